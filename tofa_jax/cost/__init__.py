"""What a subnet costs: latency measured on a backend, and the cost model that
turns MFLOPs, params, activation memory or latency into one metric p(a).

May import: `runtime`, `space`, `model`.
"""
