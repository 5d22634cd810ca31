"""The integrator's library: what a booking system, the bridge, the fleet and the
command line use to speak Haldor's protocol. ``documents`` makes, signs, seals and checks
documents as a box would; ``broker_client`` publishes them, waits for the broker's yes,
and reads the boxes' statuses and answers. Never imported by the agent."""
