"""The thresholded LCS: naive, wavefront (torch), triton_kernels, op (the registered operator)."""
