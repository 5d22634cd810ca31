"""The access core (model, policy, schedule, controller) and its IO edges (store, agent)."""
