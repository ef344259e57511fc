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

# Soft limit of the Go runtime's memory, such as "512MiB" (B, KiB, MiB, GiB,
# TiB): near it the garbage collector runs more often instead of letting the
# heap grow to twice what is live. "" leaves Go's default (no limit); the
# GOMEMLIMIT environment variable, when set, wins over it.
memory_limit = ""

# IP address the ports listen on ("" every interface; "127.0.0.1" loopback
# only). remote.bind and cluster.bind override it for those ports.
bind = ""

# TLS on the HTTP port (HTTPS) and the client gRPC port; the cluster port is
# the transport plugin's. All empty: plaintext. The files are PEM and are read
# again when they change (checked every 2s) and on SIGHUP; connections
# already open keep their certificate, and a new set that does not load is
# logged and the current one kept.
tls {
  # Certificate chain (leaf first) and its private key: set both, or neither.
  cert_file = ""
  key_file  = ""

  # CA certificates that clients' certificates must chain to; set, every
  # client must present one (mutual TLS).
  client_ca_file = ""
}

log {
  # trace, debug, info, warn or error.
  level = "info"

  # Write JSON lines instead of text.
  json = false
}

remote {
  # Client gRPC port; 0 means port + 1000 (9848), which the Nacos SDK assumes.
  grpc_port = 0

  # IP address the client gRPC port listens on; "" uses bind.
  bind = ""

  # Largest gRPC message accepted, in bytes (at least 65536).
  max_message_size = 10485760

  # A connection silent this long is probed with a ClientDetectionRequest...
  idle_timeout = "20s"

  # ...idle connections are looked for this often...
  detect_interval = "3s"

  # ...and one whose probe is unanswered this long is dropped.
  detect_timeout = "5s"

  # Bytes of pushes that may wait unsent on one connection; a connection over
  # it is closed. One push larger than this is accepted when nothing waits.
  # A newer push of a service replaces its older unsent one.
  max_outbound_bytes = 4194304

  # A connection whose stream does not take a message this long is closed.
  write_timeout = "10s"

  # A connection that has not sent ConnectionSetupRequest this long after it
  # was accepted is closed.
  setup_timeout = "10s"

  # Concurrent HTTP/2 streams per connection (at least 2): the bi-stream plus
  # concurrent unary calls. Streams over it are refused.
  max_streams_per_connection = 100

  # The HTTP/2 server of the client port: "grpc" (grpc-go) or "h2" (written
  # for the two Nacos methods; no goroutine or buffer per idle connection).
  transport = "grpc"

  # TCP connections on the client gRPC port; more are closed as they are
  # accepted. 0 derives it from the open-file limit (the limit minus 256 for
  # HTTP and the cluster port, at least half the limit).
  max_connections = 0
}

# Limits on the connections of the HTTP port.
http {
  # A keep-alive connection with no request for this long is closed.
  idle_timeout = "60s"

  # A request (headers and body) not received in full in this long has its
  # connection closed.
  read_timeout = "10s"

  # Longest time from a request's headers to the end of its response. Keep
  # it above the longest /debug/pprof/profile?seconds= you will ask for.
  write_timeout = "60s"

  # Largest request line and headers, in bytes (at least 4096); larger ones
  # get 431 Request Header Fields Too Large.
  max_header_bytes = 65536

  # Most connections the HTTP port holds; at the limit a new one replaces
  # the connection idle longest (one in a request is never closed). 0
  # derives it: half the open files remote.max_connections leaves.
  max_connections = 0
}

push {
  # Changes to a service within this window are merged into one push;
  # "0s" pushes every change at once.
  delay = "500ms"

  # How long a push waits for the client's ack.
  timeout = "5s"

  # Wait before a failed push is retried.
  retry_delay = "1s"

  # Hold a push that would tell subscribers a service has no instances left
  # when replication emptied it (a member's replicas expired or were dropped
  # by their owner), not a client of this node; it goes out only if the
  # service is still empty after protect_empty_grace ("0s": at once).
  protect_empty       = true
  protect_empty_grace = "15s"

  udp {
    # How long a 1.x client that polled instance/list with a udpPort stays
    # subscribed (is pushed over UDP) after its last poll, as in Nacos.
    expiry = "10s"
  }
}

raft {
  # The store of persistent instances, service definitions and namespaces,
  # replicated with Raft (a single node's Raft when standalone) under
  # data_dir/raft. Without a leader for apply_timeout, persistent writes fail
  # with 503; ephemeral instances are not affected.
  apply_timeout = "5s"
  # Each read of the store first waits until this node has applied every
  # write committed before it; off, it reads this node's state at once.
  leader_reads = false
}

naming {
  # Longest service or group name accepted.
  max_name_length = 512

  # Largest instance metadata accepted: the sum of its keys' and values' bytes.
  max_metadata_bytes = 16384

  # Most instances in one batch register.
  max_batch_size = 1000

  # Most services one client connection has instances in; registering in
  # one more is refused (replacing its instances of one is not).
  max_services_per_client = 1000

  # Most instances one client has in all its services; a registration that
  # adds more is refused (replacing instances counts the net change).
  max_instances_per_client = 10000

  # Most services one client connection subscribes to; subscribing to one
  # more is refused (subscribing again to one is not).
  max_subscriptions_per_client = 5000

  # Most clusters one subscription or query names (each name is at most 64
  # bytes, so this also bounds the filter's length).
  max_clusters_per_filter = 64
}

# The beat checker of the HTTP API's (1.x clients') instances. An instance
# whose beats stop is marked unhealthy after its heartbeat timeout and removed
# after its delete timeout: 15s and 30s, or the instance's metadata
# preserved.heart.beat.timeout and preserved.ip.delete.timeout (milliseconds).
health {
  # How often the instances are checked: a silent one is found at most this
  # late.
  check_interval = "1s"

  # Most HTTP clients (one per instance ip:port) one check looks at; the rest
  # wait for the next checks.
  max_checks_per_tick = 10000
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

  # IP address the cluster port listens on; "" uses bind.
  bind = ""

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

  # Mutual TLS between the members, passed to the transport plugin: PEM
  # files, all three or none. Each node's certificate (of the CA in ca_file)
  # names its address in a URI SAN, sextant://host:port; a peer is the node
  # its certificate names. See plugins/grpctransport/README.md.
  tls {
    ca_file   = ""
    cert_file = ""
    key_file  = ""
  }

  # Shared by the members: a caller must prove it knows it. No default: set
  # at least 32 random bytes, the same on every node (SEXTANT_CLUSTER_SECRET
  # keeps it out of this file). With neither tls nor secret, anyone who
  # reaches the cluster port can write the registry.
  secret = ""
}

# Token authentication of clients, as Nacos's: clients log in with a user
# name and password (the SDKs' username/password settings) at
# /nacos/v1/auth/users/login and send the token with every request. Off,
# anyone who reaches the client port can read and write the registry.
auth {
  # Require a token, and the permission needed, on every naming request.
  enabled = false

  # Signs tokens (HMAC-SHA256). No default: with auth on, set at least 32
  # random bytes, the same on every node (SEXTANT_AUTH_TOKEN_SECRET keeps it
  # out of this file).
  token_secret = ""

  # How long a token is valid (Nacos's 18000s); clients log in again before.
  token_ttl = "5h"

  # Users: name, password_hash (bcrypt, from "sextant hash-password"), roles,
  # and global_admin = true for every permission. For example:
  #   users = [{ name = "app", password_hash = "$2a$10$...", roles = ["order-rw"] }]
  users = []

  # Roles: name and permissions, each a namespace ("public" is the default
  # one, "*" every one) and an access: r (subscribe, query, list), w
  # (register, deregister) or rw. For example:
  #   roles = [{ name = "order-rw", permissions = [{ namespace = "public", access = "rw" }] }]
  roles = []
}

# Plugins to run, by name. pushrpc, the built-in executor that pushes to gRPC
# subscribers, and pushudp, which pushes to 1.x HTTP subscribers over UDP, run
# by default, each as its own process ("sextant plugin pushrpc").
# A third party's plugin is added with its binary's path (see
# examples/push-webhook); "disabled = true" keeps a plugin from running.
plugins {
  pushrpc {
    # Run inside the server instead of as a child process (built-ins only).
    in_process = false
  }
  pushudp {
    config {
      # The UDP socket pushes leave from and acks arrive at (":0": any port).
      bind = ":0"
      # When an unacknowledged push is sent again, counted from the first send;
      # the subscriber fails after the last wait.
      retry_delays = ["100ms", "500ms", "2s"]
      # Most pushes awaiting an ack at once; beyond it a push fails at once.
      max_pending = 65536
    }
  }
}
