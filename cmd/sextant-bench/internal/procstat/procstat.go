// Package procstat reads a local process's memory and CPU use from /proc,
// and finds the process listening on a TCP port.
package procstat

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of the CPU times in /proc/PID/stat: USER_HZ, which Linux
// fixes at 100 for user space on every architecture it exports it to.
const userHZ = 100

// Sample is a process's resource use at one moment.
type Sample struct {
	At  time.Time
	RSS int64         // resident set size, bytes
	CPU time.Duration // user + system CPU time since the process started
}

// Read samples the process pid from the /proc file system at root ("/proc").
func Read(root string, pid int) (Sample, error) {
	dir := filepath.Join(root, strconv.Itoa(pid))
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return Sample{}, err
	}
	rss, err := parseRSS(status)
	if err != nil {
		return Sample{}, fmt.Errorf("%s/status: %w", dir, err)
	}
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return Sample{}, err
	}
	cpu, err := parseCPU(stat)
	if err != nil {
		return Sample{}, fmt.Errorf("%s/stat: %w", dir, err)
	}
	return Sample{At: time.Now(), RSS: rss, CPU: cpu}, nil
}

// parseRSS reads VmRSS (in kB) from the text of /proc/PID/status.
func parseRSS(status []byte) (int64, error) {
	for line := range bytes.Lines(status) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := strings.Fields(string(rest))
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("unexpected VmRSS line %q", bytes.TrimSpace(line))
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("VmRSS: %w", err)
		}
		return kb << 10, nil
	}
	return 0, errors.New("no VmRSS line (a kernel thread or a zombie?)")
}

// parseCPU reads utime + stime from the text of /proc/PID/stat. The command
// name (field 2) may hold spaces and parentheses, so fields are counted from
// the last ')'.
func parseCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("no command name")
	}
	// After the name: state is field 3, utime field 14, stime field 15.
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("only %d fields after the command name", len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("CPU time: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// FindListener returns the id of the process with a socket listening on the
// TCP port, looked up in /proc at root: the socket's inode from
// net/tcp and net/tcp6, then the process holding it among every fd/.
func FindListener(root string, port int) (int, error) {
	inodes := make(map[string]bool)
	for _, name := range []string{"net/tcp", "net/tcp6"} {
		f, err := os.Open(filepath.Join(root, name))
		if err != nil {
			continue
		}
		listeningInodes(f, port, inodes)
		f.Close()
	}
	if len(inodes) == 0 {
		return 0, fmt.Errorf("nothing listens on TCP port %d", port)
	}
	procs, err := os.ReadDir(root)
	if err != nil {
		return 0, err
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fdDir := filepath.Join(root, p.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue // gone, or not ours to read
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil {
				continue
			}
			if inode, ok := strings.CutPrefix(link, "socket:["); ok && inodes[strings.TrimSuffix(inode, "]")] {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("no readable process holds the socket listening on TCP port %d", port)
}

// tcpListen is the state of a listening socket in /proc/net/tcp.
const tcpListen = "0A"

// listeningInodes adds to inodes those of the sockets in a /proc/net/tcp
// table that listen on port.
func listeningInodes(f *os.File, port int, inodes map[string]bool) {
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != tcpListen {
			continue
		}
		_, hexPort, ok := strings.Cut(fields[1], ":")
		if !ok {
			continue
		}
		if p, err := strconv.ParseUint(hexPort, 16, 16); err == nil && int(p) == port {
			inodes[fields[9]] = true
		}
	}
}

// ReadTree samples the process pid and all its descendants (such as a
// server's plugin processes) and adds their use up; it also returns how many
// processes that was. Pages that processes share are counted once for each.
func ReadTree(root string, pid int) (Sample, int, error) {
	total, err := Read(root, pid)
	if err != nil {
		return Sample{}, 0, err
	}
	n := 1
	for _, child := range descendants(root, pid) {
		s, err := Read(root, child)
		if err != nil {
			continue // it ended meanwhile
		}
		total.RSS += s.RSS
		total.CPU += s.CPU
		n++
	}
	return total, n, nil
}

// descendants lists the processes below pid, from each one's parent in
// /proc/PID/stat.
func descendants(root string, pid int) []int {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil
	}
	children := make(map[int][]int)
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(root, e.Name(), "stat"))
		if err != nil {
			continue
		}
		if ppid, err := parseParent(stat); err == nil {
			children[ppid] = append(children[ppid], p)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// parseParent reads the parent's id (field 4) from /proc/PID/stat.
func parseParent(stat []byte) (int, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("no command name")
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 2 {
		return 0, errors.New("no parent field")
	}
	return strconv.Atoi(f[1])
}

// Machine is the CPU time of the whole machine, every core added up, from
// its boot: busy (user, nice, system, irq, softirq, steal) and in all.
type Machine struct {
	Busy, Total time.Duration
}

// ReadMachine samples the machine's CPU time from /proc/stat at root.
func ReadMachine(root string) (Machine, error) {
	b, err := os.ReadFile(filepath.Join(root, "stat"))
	if err != nil {
		return Machine{}, err
	}
	return parseMachine(b)
}

// parseMachine reads the "cpu" line of /proc/stat: user nice system idle
// iowait irq softirq steal (guest time is counted in user already).
func parseMachine(stat []byte) (Machine, error) {
	line, _, _ := bytes.Cut(stat, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return Machine{}, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var m Machine
	for i, s := range f[1:9] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return Machine{}, fmt.Errorf("/proc/stat: %w", err)
		}
		d := time.Duration(n) * time.Second / userHZ
		m.Total += d
		if i != 3 && i != 4 { // idle, iowait
			m.Busy += d
		}
	}
	return m, nil
}
