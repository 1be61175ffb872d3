package main

import "github.com/switchboard-hub/switchboard/internal/server"

// wireDestinations builds direction B: the workflow outbox engine and whatever else the Segment
// destination needs running.
func wireDestinations(d *deps) (server.DestinationConfig, []worker, error) {
	return server.DestinationConfig{}, nil, nil
}
