// VeilMPC owns the engines (fixed point in the clear, dealer, party) and the recipes.
