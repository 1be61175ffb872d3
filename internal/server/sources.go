package server

import "github.com/gin-gonic/gin"

// SourceConfig is what the SparkPost (direction A) handlers need.
type SourceConfig struct{}

// sourceRoutes mounts the SparkPost hook, OAuth token endpoint and the source admin routes.
func (s *Server) sourceRoutes(r *gin.Engine, t *gin.RouterGroup) {}
