"""The pieces of benchmarks/churn.py, one job each (its docstring lists them); churn.py is the command."""
