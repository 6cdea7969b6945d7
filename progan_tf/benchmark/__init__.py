"""Speed measurements: this machine's peak (`peak`) and the training step's throughput (`throughput`).

The scripts benchmarks/peak.py and benchmarks/throughput.py, and `progan-train --benchmark`,
run them; benchmarks/RESULTS.md keeps the numbers.
"""
