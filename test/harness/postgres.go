package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresBinDirEnv names the environment variable that points at a directory holding initdb and postgres, for
// machines where they are not in one of the usual places.
const PostgresBinDirEnv = "HOOKPOST_POSTGRES_BIN"

// postgresOSUser is the account initdb and postgres run as when the tests run as root: PostgreSQL refuses to
// run as root.
const postgresOSUser = "postgres"

// postgresStartTimeout bounds how long a start waits for the server to accept connections.
const postgresStartTimeout = 60 * time.Second

// Postgres is a throwaway PostgreSQL cluster listening on 127.0.0.1. Its superuser is "postgres" with trust
// authentication, so the DSN holds no password.
type Postgres struct {
	binDir  string
	dir     string // holds data/, the socket directory and the server log
	port    int
	runAs   *syscall.Credential // nil unless the tests run as root
	logPath string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has exited
	logFile *os.File
}

// StartPostgres starts a fresh cluster in a temporary directory and stops it when the test ends. It fails the
// test when the server binaries are missing (`make test` installs them).
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	pg, err := StartPostgresProcess(t.TempDir())
	if err != nil {
		t.Fatalf("start postgres: %v", err)
	}
	t.Cleanup(pg.Stop)
	return pg
}

// StartPostgresProcess initialises a cluster under dir (which must exist) and starts it on a free loopback
// port. The caller must call Stop. It is the variant for TestMain, Ginkgo's BeforeSuite and benchmark programs.
func StartPostgresProcess(dir string) (*Postgres, error) {
	binDir, err := findPostgresBinDir()
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("resolve postgres directory: %w", err)
	}
	port, err := freeLoopbackPort()
	if err != nil {
		return nil, err
	}
	pg := &Postgres{binDir: binDir, dir: dir, port: port, logPath: filepath.Join(dir, "postgres.log")}
	if os.Geteuid() == 0 {
		if pg.runAs, err = postgresCredential(); err != nil {
			return nil, err
		}
		if err := makeReachable(dir); err != nil {
			return nil, err
		}
	}
	if err := pg.initdb(); err != nil {
		return nil, err
	}
	if err := pg.start(); err != nil {
		return nil, err
	}
	return pg, nil
}

// DSN returns a connection string for the "postgres" database as the superuser.
func (p *Postgres) DSN() string {
	return p.DSNFor("postgres")
}

// DSNFor returns a connection string for the named database as the superuser.
func (p *Postgres) DSNFor(database string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.port, database)
}

// Port returns the loopback port the server listens on; it stays the same across restarts.
func (p *Postgres) Port() int { return p.port }

// Pids returns the process ids of the running server, the postmaster first and then its children (backends
// and background processes), for programs that read their CPU time and memory from /proc; nil while stopped.
func (p *Postgres) Pids() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil
	}
	pid := p.cmd.Process.Pid
	return append([]int{pid}, childProcesses(pid)...)
}

// CreateDatabase creates an empty database so that suites sharing one cluster stay apart.
func (p *Postgres) CreateDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, p.DSN())
	if err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create database %q: %w", name, err)
	}
	return nil
}

// Stop shuts the server down (fast shutdown: open transactions roll back) and waits for it to exit. Stopping a
// stopped server does nothing.
func (p *Postgres) Stop() {
	p.signal(syscall.SIGINT, false)
}

// Kill ends the server and all its backends with SIGKILL, as a crash would. The next start runs crash recovery.
func (p *Postgres) Kill() {
	p.signal(syscall.SIGKILL, true)
}

// Restart stops the server and starts it again on the same port with the same data.
func (p *Postgres) Restart() error {
	p.Stop()
	return p.Start()
}

// Start starts a stopped or killed server again on the same port with the same data.
func (p *Postgres) Start() error {
	p.mu.Lock()
	running := p.cmd != nil
	p.mu.Unlock()
	if running {
		return errors.New("postgres is already running")
	}
	return p.start()
}

func (p *Postgres) signal(sig syscall.Signal, crash bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	pid := p.cmd.Process.Pid
	var children []int
	if crash {
		// Every backend calls setsid, so a process-group kill misses them: find them before the postmaster dies
		// and they are reparented.
		children = childProcesses(pid)
	}
	_ = p.cmd.Process.Signal(sig)
	for _, child := range children {
		_ = syscall.Kill(child, sig)
	}
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	waitForExit(children)
	p.cmd = nil
	_ = p.logFile.Close()
}

func (p *Postgres) dataDir() string   { return filepath.Join(p.dir, "data") }
func (p *Postgres) socketDir() string { return filepath.Join(p.dir, "socket") }

func (p *Postgres) initdb() error {
	for _, d := range []string{p.dataDir(), p.socketDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("create postgres directory: %w", err)
		}
		if err := p.ownDir(d); err != nil {
			return err
		}
	}
	cmd := exec.Command(filepath.Join(p.binDir, "initdb"),
		"-D", p.dataDir(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync",
		"--no-instructions")
	cmd.Env = p.env()
	cmd.Dir = p.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.runAs}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	return nil
}

func (p *Postgres) start() error {
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open postgres log: %w", err)
	}
	cmd := exec.Command(filepath.Join(p.binDir, "postgres"),
		"-D", p.dataDir(),
		"-p", strconv.Itoa(p.port),
		"-k", p.socketDir(),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=200",
		"-c", "shared_buffers=32MB",
		"-c", "dynamic_shared_memory_type=posix",
	)
	cmd.Env = p.env()
	cmd.Dir = p.dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// Its own process group, so a Ctrl-C on the test reaches the harness first and Stop shuts down cleanly.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.runAs, Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return fmt.Errorf("start postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	p.mu.Lock()
	p.cmd, p.exited, p.logFile = cmd, exited, logFile
	p.mu.Unlock()

	if err := p.waitReady(exited); err != nil {
		p.Kill()
		return fmt.Errorf("%w\npostgres log:\n%s", err, p.logTail())
	}
	return nil
}

func (p *Postgres) waitReady(exited <-chan struct{}) error {
	deadline := time.Now().Add(postgresStartTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("postgres exited during startup")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, p.DSN())
		if err == nil {
			err = conn.Ping(ctx)
			_ = conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return nil
		}
		lastErr = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("postgres did not accept connections within %s: %w", postgresStartTimeout, lastErr)
}

func (p *Postgres) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func (p *Postgres) env() []string {
	return []string{"PATH=" + p.binDir + ":/usr/bin:/bin", "LC_ALL=C", "LANG=C", "TZ=UTC", "HOME=" + p.dir}
}

func (p *Postgres) ownDir(dir string) error {
	if p.runAs == nil {
		return nil
	}
	if err := os.Chown(dir, int(p.runAs.Uid), int(p.runAs.Gid)); err != nil {
		return fmt.Errorf("hand %s to the %s user: %w", dir, postgresOSUser, err)
	}
	return nil
}

// findPostgresBinDir looks in $HOOKPOST_POSTGRES_BIN, then the Debian layout (newest version first), then PATH.
func findPostgresBinDir() (string, error) {
	var candidates []string
	if d := os.Getenv(PostgresBinDirEnv); d != "" {
		candidates = append(candidates, d)
	}
	debian, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for i := len(debian) - 1; i >= 0; i-- { // Glob sorts; the last is usually the newest
		candidates = append(candidates, debian[i])
	}
	if path, err := exec.LookPath("postgres"); err == nil {
		candidates = append(candidates, filepath.Dir(path))
	}
	for _, d := range candidates {
		if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", fmt.Errorf("postgresql server binaries (initdb, postgres) not found in $%s, /usr/lib/postgresql/*/bin "+
		"or PATH: run `make test`, which installs them (apt-get install postgresql)", PostgresBinDirEnv)
}

func isExecutable(path string) bool {
	info, err := os.Stat(path)
	return err == nil && !info.IsDir() && info.Mode()&0o111 != 0
}

func postgresCredential() (*syscall.Credential, error) {
	u, err := user.Lookup(postgresOSUser)
	if err != nil {
		return nil, fmt.Errorf("postgres refuses to run as root and the %q OS user is missing: run `make test`, "+
			"which installs postgresql and creates it: %w", postgresOSUser, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("parse uid of %q: %w", postgresOSUser, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("parse gid of %q: %w", postgresOSUser, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

// makeReachable lets the postgres OS user traverse every ancestor of dir. Temporary directories are created
// 0700 by root, so their execute bit for others is added; a directory outside the temp tree that others cannot
// traverse is reported instead of opened up.
func makeReachable(dir string) error {
	tmp, err := filepath.EvalSymlinks(os.TempDir())
	if err != nil {
		tmp = os.TempDir()
	}
	resolved, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", dir, err)
	}
	for d := resolved; ; d = filepath.Dir(d) {
		info, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("stat %s: %w", d, err)
		}
		if info.Mode().Perm()&0o001 == 0 {
			if d != tmp && !strings.HasPrefix(d, tmp+string(filepath.Separator)) {
				return fmt.Errorf("the %s OS user cannot enter %s: put the postgres directory under %s "+
					"or make %s traversable (chmod o+x)", postgresOSUser, d, tmp, d)
			}
			if err := os.Chmod(d, info.Mode().Perm()|0o001); err != nil {
				return fmt.Errorf("let the %s OS user enter %s: %w", postgresOSUser, d, err)
			}
		}
		if parent := filepath.Dir(d); parent == d {
			return nil
		}
	}
}

// childProcesses lists the processes whose parent is pid, from /proc. Outside Linux it finds none.
func childProcesses(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var children []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if parent, _, ok := processParentAndState(child); ok && parent == pid {
			children = append(children, child)
		}
	}
	return children
}

// processParentAndState reads the parent pid and state letter from /proc/<pid>/stat.
func processParentAndState(pid int) (parent int, state byte, ok bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, false
	}
	// The command name is in parentheses and may contain spaces: parse after the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, false
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 2 || len(fields[0]) != 1 {
		return 0, 0, false
	}
	parent, err = strconv.Atoi(fields[1])
	if err != nil {
		return 0, 0, false
	}
	return parent, fields[0][0], true
}

// waitForExit waits (briefly) until each process is gone or a zombie, so a restart does not find old backends
// still attached to the shared memory.
func waitForExit(pids []int) {
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for time.Now().Before(deadline) {
			if _, state, ok := processParentAndState(pid); !ok || state == 'Z' || state == 'X' {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
