"""What the DP ops share: the door (checks), the CPU loops' threads (cpu), the Triton kernels of all three
ops (dp) with their walk (triton) and launch rules (launch), the registration helpers, the refusal of
second derivatives."""
