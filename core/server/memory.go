package server

import (
	"runtime/debug"

	"github.com/hashicorp/go-hclog"
)

// applyMemoryLimit sets the Go runtime's soft memory limit to memory_limit
// (limit bytes; 0 for unset), unless GOMEMLIMIT is set in the environment
// (goMemLimit): the runtime has then applied that one, which wins. It logs
// the limit in force.
func applyMemoryLimit(limit int64, setting, goMemLimit string, log hclog.Logger) {
	switch {
	case goMemLimit != "":
		if setting != "" {
			log.Warn("memory_limit is ignored: GOMEMLIMIT is set in the environment", "memory_limit", setting, "GOMEMLIMIT", goMemLimit)
		}
		log.Info("memory limit", "bytes", debug.SetMemoryLimit(-1), "from", "GOMEMLIMIT="+goMemLimit)
	case limit > 0:
		debug.SetMemoryLimit(limit)
		log.Info("memory limit", "bytes", limit, "from", "memory_limit="+setting)
	default:
		log.Info("no memory limit: the heap may grow to twice what is live between collections (set memory_limit)")
	}
}
