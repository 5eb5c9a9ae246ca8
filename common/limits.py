"""What one node can physically have: the bounds that keep an absurd input from becoming a huge object.

The scheduler's inventory makes one object per GPU, and the exporter's simulated node one P2P link per
pair of GPUs, so a label or fleet entry of 100,000,000 GPUs is memory and time (and O(n^2) links)
before it is a plan or a scrape. Inputs beyond these bounds are refused with the node and the field.
"""

MAX_GPUS_PER_NODE = 64
"""Four times the largest single system sold (16 GPUs in an HGX-2 / DGX-2; 8 in today's HGX and
MI300X platforms): beyond it a count is a bug or an attack, not a node."""
