"""FSD: naive (the specification), wavefront (torch), triton_kernels, op (the registered operator)."""
