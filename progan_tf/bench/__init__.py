"""What progan-bench measures: FLOPs per image (`flops`), this machine's peak (`peak`), step throughput.

benchmarks/RESULTS.md keeps the numbers; developer diagnostics (profiles, oneDNN logs,
the FMA ceiling) live in benchmarks/, outside the package.
"""
