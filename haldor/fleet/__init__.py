"""`haldor fleet`: the municipality's view of many sites, from their events and status."""
