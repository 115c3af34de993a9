"""pairwise_cosine, the producer of the DP inputs: torch_kernels (one bmm forward, one baddbmm per input
backward), triton_kernels, op (the Triton backend as a registered operator).

S[b, p, i, j] = <a_p[b, i], b_p[b, j]> / max(|a_p[b, i]| |b_p[b, j]|, eps), where x_p is the p-th of
`parts` equal column chunks of x (FSD compares the two halves of its candidates: match and gap).

The torch backend is one bmm forward and one baddbmm per input backward (autograd through
normalise-then-multiply costs several times more on [B, L, 2048] inputs). The Triton backend does a
pair's whole forward in one program (norms, products, scaling) and its whole backward in one launch
(programs over column chunks), so a similarity costs two launches instead of about twenty; it
handles N, M <= MAX_ROWS (32; the candidate counts of the method are 5 and 30).
"""
