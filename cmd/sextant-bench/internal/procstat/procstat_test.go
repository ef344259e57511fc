package procstat

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func TestParseRSS(t *testing.T) {
	rss, err := parseRSS([]byte("Name:\tsextant\nVmPeak:\t  20000 kB\nVmRSS:\t   14848 kB\nRssAnon:\t 9000 kB\n"))
	if err != nil || rss != 14848<<10 {
		t.Errorf("parseRSS = %d, %v", rss, err)
	}
	for _, bad := range []string{"Name:\tkthreadd\n", "VmRSS:\t 12 MB\n", "VmRSS:\t x kB\n"} {
		if _, err := parseRSS([]byte(bad)); err == nil {
			t.Errorf("parseRSS(%q) succeeded", bad)
		}
	}
}

func TestParseCPU(t *testing.T) {
	// utime 250 and stime 50 ticks; the command name has spaces and ')'.
	stat := "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 9 0 100 1000 2000\n"
	cpu, err := parseCPU([]byte(stat))
	if err != nil || cpu != 3*time.Second {
		t.Errorf("parseCPU = %v, %v; want 3s", cpu, err)
	}
	for _, bad := range []string{"4242 no name", "4242 (x) S 1 2", "4242 (x) S 1 2 3 4 5 6 7 8 9 10 u s"} {
		if _, err := parseCPU([]byte(bad)); err == nil {
			t.Errorf("parseCPU(%q) succeeded", bad)
		}
	}
}

func TestReadThisProcess(t *testing.T) {
	s, err := Read("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.RSS <= 0 || s.CPU < 0 || time.Since(s.At) > time.Minute {
		t.Errorf("sample %+v", s)
	}
	if _, err := Read("/proc", 0); err == nil {
		t.Error("Read of pid 0 succeeded")
	}
}

func TestFindListener(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	pid, err := FindListener("/proc", port)
	if err != nil || pid != os.Getpid() {
		t.Errorf("FindListener(%d) = %d, %v; want this process, %d", port, pid, err, os.Getpid())
	}
	l.Close()
	if pid, err := FindListener("/proc", port); err == nil {
		t.Errorf("FindListener found %d on a closed port", pid)
	}
}

func TestListeningInodesSkipsOtherStatesAndPorts(t *testing.T) {
	table := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2290 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0 100 0 0 10 0
   1: 0100007F:2290 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 222 1 0 20 4 30 10 -1
   2: 0100007F:2291 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 333 1 0 100 0 0 10 0
`
	path := filepath.Join(t.TempDir(), "tcp")
	if err := os.WriteFile(path, []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	inodes := map[string]bool{}
	listeningInodes(f, 0x2290, inodes)
	if len(inodes) != 1 || !inodes["111"] {
		t.Errorf("inodes %v, want only 111", inodes)
	}
}

func TestReadTreeAddsUpChildren(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal("starting a child process:", err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	self, err := Read("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	tree, n, err := ReadTree("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if n < 2 || tree.RSS <= self.RSS {
		t.Errorf("tree of %d processes with RSS %d, this process alone %d", n, tree.RSS, self.RSS)
	}
	if p, err := parseParent([]byte("12 (a b)) S 7 12 12")); err != nil || p != 7 {
		t.Errorf("parseParent = %d, %v", p, err)
	}
}

func TestParseMachine(t *testing.T) {
	m, err := parseMachine([]byte("cpu  100 5 50 1000 20 3 2 10 7 0\ncpu0 1 2 3 4 5 6 7 8 9 0\n"))
	if err != nil || m.Busy != 1700*time.Millisecond || m.Total != 11900*time.Millisecond {
		t.Errorf("parseMachine = %+v, %v", m, err)
	}
	if _, err := parseMachine([]byte("intr 1 2 3\n")); err == nil {
		t.Error("a file without the cpu line was read")
	}
	if m, err := ReadMachine("/proc"); err != nil || m.Total <= 0 || m.Busy > m.Total {
		t.Errorf("ReadMachine = %+v, %v", m, err)
	}
}
