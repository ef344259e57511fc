// Package healthcheck is the server-side health check of persistent
// instances (Nacos's ephemeral=false): the server, not the client, finds out
// whether each one is up, and writes the changes of health. It knows nothing
// of Raft or of the server: a Scheduler reads its targets, its share of them
// and where changes go through three functions of its Config (Targets, Owns,
// Report).
//
// # Checkers
//
// Each service cluster has a Checker, Nacos's cluster healthChecker with the
// cluster's check port:
//
//   - TCP (the default, and the zero Checker): a connection to ip:port opens
//     within Config.TCPTimeout (500 ms). It is closed at once, without
//     lingering: the close sends a reset, so that 10,000 checks every 5 s
//     leave no sockets in TIME_WAIT, as HAProxy closes its checks.
//   - HTTP: a GET of Path on ip:port, with Headers, answers ExpectedCode
//     (200) within Config.HTTPTimeout (1 s), connect included. Redirects are
//     not followed (Nacos follows none either): a 3xx is the answer, and
//     passes only as the expected code. At most 4 KiB of the body is read;
//     no connection is kept (each check opens its own and closes it), no
//     proxy is used, no compression asked for. Unlike Nacos, which checks for
//     200 whatever expectedResponseCode says, the expected code is honoured.
//   - NONE: never checked; the health is what operators set.
//
// CheckPort, when not 0, is checked instead of the instance's port (Nacos's
// checkPort with useInstancePort4Check false). ParseChecker reads Nacos's
// healthChecker JSON ({"type":"HTTP","path":"/health","headers":"k:v|k2:v2",
// "expectedResponseCode":200}) and Checker.Validate checks a checker as the
// HTTP API accepts it, with errors naming the field; NacosJSON writes it
// back.
//
// # When health changes
//
// As in Nacos, a failure is hard or soft. A hard failure (the connection
// refused: nothing listens; an HTTP status other than the expected one,
// 302 and 503 excepted) turns a healthy instance unhealthy at once. A soft
// failure (a timeout, another error, HTTP 302 or 503: busy, maybe) does so
// after Config.UnhealthyAfter (3, Nacos's checkTimes) in a row, so that one
// lost SYN does not flap an instance and push its service to every
// subscriber. A success turns an unhealthy instance healthy after
// Config.HealthyAfter (1) in a row: Nacos wants 3, but checks a fast
// instance every second; at one check per 5 s, one success gives about the
// same time back to service.
//
// # Ownership
//
// Every member runs a Scheduler over the same targets (the Raft store's
// persistent instances) and checks only those of the services it owns:
// Config.Owns, the rendezvous hash of the service's key over the members that
// are UP, so each service is checked by one member, and the members share the
// work. Owns is asked once per service per round: when a member joins or
// leaves, services move at the next round. A member that stops owning a
// service forgets its instances' counts; the new owner starts its own.
//
// # Only changes are written
//
// Each target carries its stored health (Target.Healthy), and Config.Report is
// called only when a check's verdict differs from it, so a steady cluster
// writes nothing. A Report that fails (no quorum, no leader) is not retried
// on its own: the instance is checked again at its next turn, and the change
// is reported again if it still holds. Failed reports are counted, and logged
// at most once per interval with the number held back, so a cluster without
// quorum does not flood the log.
//
// # Timing
//
// A round runs every Config.Interval (5 s). Each target has a phase within
// the interval, a hash of its key with a seed drawn at New: checks are spread
// evenly over the interval, each target is checked once per interval at the
// same point of it, and members and restarts do not line up. The round is
// cut in 50 slots (100 ms at 5 s): the dispatcher wakes at the start of
// each slot and starts its checks together (10,000 targets at 5 s: 200 per
// slot), up to a slot ahead of their phase. Starting the checks in bursts
// rather than one by one halves the CPU they take, since waking an idle
// process costs more than a connect. An instance that stops listening is
// therefore found unhealthy within Interval + TCPTimeout (a refusal is
// immediate); one that stops answering (a timeout) within UnhealthyAfter ×
// Interval + its timeout; one that comes back is healthy within Interval +
// its check. A target listed for the first time is checked at its phase of
// the next round (or of the first, at Start).
//
// # Bounded work
//
// Config.MaxConcurrent workers (128) run the checks and their Reports; the
// dispatcher waits when all are busy, so no more checks are ever in flight,
// and there is no goroutine per check. A target whose previous check still
// runs is skipped (sextant_healthcheck_skipped_total). When slow targets keep
// every worker busy, a round cannot start all its checks within the interval:
// it is late, the next round starts when it ends, and a warning (at most one
// per interval) says to raise the concurrency or lower the timeouts. State is
// kept per target listed, owned and checked in the last round, and dropped
// when it no longer is; a check in flight for a dropped target is not
// reported.
//
// # Metrics
//
// sextant_healthcheck_checks_total{type,result} (result: success, refused,
// timeout, status, error), sextant_healthcheck_check_duration_seconds{type},
// sextant_healthcheck_changes_total{healthy}, sextant_healthcheck_report_failures_total,
// sextant_healthcheck_targets (the instances this node checks),
// sextant_healthcheck_skipped_total and sextant_healthcheck_late_rounds_total.
package healthcheck
