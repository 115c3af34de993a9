"""What the DP ops share: the Triton walk and launch rules, the torch wavefront, the registration
helpers, the refusal of second derivatives."""
