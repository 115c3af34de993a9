"""What the DP ops share: the door (checks), the CPU loops' threads (cpu), the Triton walk, launch
rules and three-way kernels, the registration helpers, the refusal of second derivatives."""
