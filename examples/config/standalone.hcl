# Sextant configuration for a standalone server, setting every key to its
# default. The same settings are in standalone.hcl and standalone.yaml.
#
# Precedence, lowest first: built-in defaults, this file, environment
# variables, flags. Every key has a variable: SEXTANT_ and the key path in
# upper case with dots as underscores, e.g. push.retry_delay is
# SEXTANT_PUSH_RETRY_DELAY. Durations are strings such as "500ms" or "5s".

# HTTP port (Nacos open API and console). Clients of the Nacos 2.x SDK also
# connect to gRPC on remote.grpc_port, by default this port + 1000.
port = 8848

# Directory for persistent state, relative to the working directory.
data_dir = "data"

log {
  # trace, debug, info, warn or error.
  level = "info"

  # Write JSON lines instead of text.
  json = false
}

remote {
  # Client gRPC port; 0 means port + 1000 (9848), which the Nacos SDK assumes.
  grpc_port = 0

  # Largest gRPC message accepted, in bytes (at least 65536).
  max_message_size = 10485760

  # A connection silent this long is probed with a ClientDetectionRequest...
  idle_timeout = "20s"

  # ...idle connections are looked for this often...
  detect_interval = "3s"

  # ...and one whose probe is unanswered this long is dropped.
  detect_timeout = "5s"
}

push {
  # Changes to a service within this window are merged into one push;
  # "0s" pushes every change at once.
  delay = "500ms"

  # How long a push waits for the client's ack.
  timeout = "5s"

  # Wait before a failed push is retried.
  retry_delay = "1s"
}

naming {
  # Longest service or group name accepted.
  max_name_length = 512

  # Largest instance metadata accepted: the sum of its keys' and values' bytes.
  max_metadata_bytes = 16384

  # Most instances in one batch register.
  max_batch_size = 1000
}

debug {
  # Serve Go's profiler under /debug/pprof/ on the HTTP port.
  pprof = false
}

# A cluster of nodes. With no members (and no membership plugin) the node is
# standalone and runs neither a membership nor a transport plugin.
cluster {
  # Static member list: each node's HTTP address, host:port (a bare IP means
  # this node's port). Also --members h:p,h:p. Setting it selects the static plugin.
  members = []

  # Plugin that says who the members are: standalone, static, file (a Nacos
  # cluster.conf, configured in plugins { file { config { path = ... } } }),
  # address-server, or a plugin of yours; "" picks static when members is
  # set, standalone otherwise.
  membership = ""

  # Plugin nodes talk through (the built-in speaks gRPC on the cluster port).
  transport = "grpctransport"

  # This node's HTTP address as the others know it; "" finds it.
  self = ""

  # Cluster port; 0 means port + 1001 (9849), where the others reach it.
  port = 0

  # Health reports between members; three failed ones make a member DOWN.
  report_interval = "2s"

  # Window merging the changes sent to a member in one batch.
  sync_delay = "1s"

  # Wait before a failed batch is sent again.
  sync_retry_delay = "3s"

  # How often a node vouches for its clients to the others.
  verify_interval = "5s"

  # The replicas of a node that stopped vouching for them this long are
  # dropped: short makes a dead node's instances go quickly; too short lets a
  # slow node's instances flap on the others.
  client_expiry = "10s"
}

# Plugins to run, by name. pushrpc, the built-in executor that pushes to gRPC
# subscribers, runs by default as its own process ("sextant plugin pushrpc").
# A third party's plugin is added with its binary's path (see
# examples/push-webhook); "disabled = true" keeps a plugin from running.
plugins {
  pushrpc {
    # Run inside the server instead of as a child process (built-ins only).
    in_process = false
  }
}
