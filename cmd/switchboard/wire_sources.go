package main

import "github.com/switchboard-hub/switchboard/internal/server"

// wireSources builds direction A: the SparkPost inbox processor and the Segment outbox engine.
func wireSources(d *deps) (server.SourceConfig, []worker, error) {
	return server.SourceConfig{}, nil, nil
}
