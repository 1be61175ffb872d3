package server

import "github.com/gin-gonic/gin"

// DestinationConfig is what the Segment-destination (direction B) handlers need.
type DestinationConfig struct{}

// destinationRoutes mounts the Segment hook and the destination, user and workflow admin routes.
func (s *Server) destinationRoutes(r *gin.Engine, t *gin.RouterGroup) {}
