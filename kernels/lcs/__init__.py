"""The thresholded LCS: naive (the specification), cpu (compiled loops), op (the registered operator;
its Triton kernels are kernels.shared.dp's with OP="lcs")."""
