"""The equilibrium-dynamics study: recursive generation from seeds at chosen initial bias levels,
the direction of the stereotype per generation, and the fixed point it settles at."""
