"""FSD: naive (the specification), cpu (compiled loops), triton_kernels, op (the registered operator)."""
