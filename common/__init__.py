"""What every EGS component may import: the project's error types and its one way to check input files.

`common` depends on no component (it sits below `exporter/`, `scheduler/`, `autoscaler/`, `alerts/`
and `dashboards/` in the import contracts of `pyproject.toml`), so that a component can share it
without importing another component, and `egs/` (the composition root) can catch what they raise.
"""
