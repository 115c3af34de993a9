"""pairwise_cosine, the producer of the DP inputs (torch_kernels).

S[b, p, i, j] = <a_p[b, i], b_p[b, j]> / max(|a_p[b, i]| |b_p[b, j]|, eps), where x_p is the p-th of
`parts` equal column chunks of x (FSD compares the two halves of its candidates: match and gap).

One bmm forward and one baddbmm per input backward (autograd through normalise-then-multiply costs
several times more on [B, L, 2048] inputs).
"""
