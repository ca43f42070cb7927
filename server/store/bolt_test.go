package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// helperEnv selects a child-process role when the test binary re-executes
// itself (flock is per process, so lock and crash tests need a second one).
const (
	helperEnv     = "STORE_TEST_HELPER"
	helperPathEnv = "STORE_TEST_DB"
)

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "open":
		os.Exit(helperOpen(os.Getenv(helperPathEnv)))
	case "writer":
		os.Exit(helperWriter(os.Getenv(helperPathEnv)))
	default:
		fmt.Fprintln(os.Stderr, "unknown helper role")
		os.Exit(3)
	}
}

// helperOpen tries to open the database and reports the outcome on stdout.
func helperOpen(path string) int {
	s, err := OpenBolt(path, BoltOptions{})
	if err != nil {
		fmt.Printf("locked=%v err=%s\n", errors.Is(err, ErrLocked), err)
		return 0
	}
	fmt.Println("opened")
	_ = s.Close()
	return 0
}

// helperWriter writes keys k0, k1, ... one Update each and acknowledges
// every committed write on stdout, until killed (or a generous cap).
func helperWriter(path string) int {
	s, err := OpenBolt(path, BoltOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	out := bufio.NewWriter(os.Stdout)
	for i := 0; i < 1_000_000; i++ {
		key := "k" + strconv.Itoa(i)
		err := s.Update(context.Background(), func(tx Tx) error {
			return tx.Put("crash", key, []byte("value-"+key))
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		fmt.Fprintf(out, "ack %d\n", i)
		if err := out.Flush(); err != nil {
			return 2
		}
	}
	return 0
}

func openTemp(t *testing.T) (Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sub", "provision.db")
	s, err := OpenBolt(path, BoltOptions{})
	if err != nil {
		t.Fatalf("OpenBolt: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, path
}

func TestCRUDInTransactions(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()

	err := s.Update(ctx, func(tx Tx) error {
		for _, k := range []string{"b", "a", "c"} {
			if err := tx.Put("machines", k, []byte("v"+k)); err != nil {
				return err
			}
		}
		// Visible inside the same transaction.
		if v, ok := tx.Get("machines", "a"); !ok || string(v) != "va" {
			return fmt.Errorf("in-tx get: %q %v", v, ok)
		}
		return tx.Put("profiles", "global", nil)
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}

	err = s.View(ctx, func(tx Tx) error {
		var keys []string
		if err := tx.ForEach("machines", func(k string, v []byte) error {
			if string(v) != "v"+k {
				return fmt.Errorf("value of %s = %q", k, v)
			}
			keys = append(keys, k)
			return nil
		}); err != nil {
			return err
		}
		if strings.Join(keys, ",") != "a,b,c" {
			return fmt.Errorf("keys in order = %v", keys)
		}
		if v, ok := tx.Get("profiles", "global"); !ok || len(v) != 0 {
			return fmt.Errorf("empty value: %q %v", v, ok)
		}
		if _, ok := tx.Get("machines", "zz"); ok {
			return errors.New("missing key found")
		}
		if _, ok := tx.Get("nobucket", "a"); ok {
			return errors.New("key in missing bucket found")
		}
		if err := tx.ForEach("nobucket", func(string, []byte) error { return errors.New("called") }); err != nil {
			return fmt.Errorf("ForEach missing bucket: %w", err)
		}
		if err := tx.Put("machines", "x", []byte("y")); !errors.Is(err, ErrReadOnly) {
			return fmt.Errorf("Put in View = %v, want ErrReadOnly", err)
		}
		if err := tx.Delete("machines", "a"); !errors.Is(err, ErrReadOnly) {
			return fmt.Errorf("Delete in View = %v, want ErrReadOnly", err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("View: %v", err)
	}

	// Update and delete, including missing keys/buckets.
	err = s.Update(ctx, func(tx Tx) error {
		if err := tx.Put("machines", "a", []byte("new")); err != nil {
			return err
		}
		if err := tx.Delete("machines", "b"); err != nil {
			return err
		}
		if err := tx.Delete("machines", "nope"); err != nil {
			return fmt.Errorf("delete missing key: %w", err)
		}
		if err := tx.Delete("nobucket", "nope"); err != nil {
			return fmt.Errorf("delete in missing bucket: %w", err)
		}
		if err := tx.Put("machines", "", []byte("x")); err == nil {
			return errors.New("empty key accepted")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Update 2: %v", err)
	}
	got := snapshot(t, s, "machines")
	want := map[string]string{"a": "new", "c": "vc"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after update: %v, want %v", got, want)
	}
}

func TestValuesAreCopies(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	if err := s.Update(ctx, func(tx Tx) error { return tx.Put("b", "k", []byte("original")) }); err != nil {
		t.Fatal(err)
	}
	var kept, keptEach []byte
	if err := s.View(ctx, func(tx Tx) error {
		kept, _ = tx.Get("b", "k")
		return tx.ForEach("b", func(_ string, v []byte) error { keptEach = v; return nil })
	}); err != nil {
		t.Fatal(err)
	}
	// Writing to the returned slices must neither fault (bbolt's mmap is
	// read-only) nor change the stored value.
	copy(kept, "XXXXXXXX")
	copy(keptEach, "YYYYYYYY")
	// More writes force bbolt to remap; kept values must stay intact.
	if err := s.Update(ctx, func(tx Tx) error {
		for i := 0; i < 2000; i++ {
			if err := tx.Put("filler", strconv.Itoa(i), make([]byte, 512)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if string(kept) != "XXXXXXXX" || string(keptEach) != "YYYYYYYY" {
		t.Fatalf("kept values changed: %q %q", kept, keptEach)
	}
	if got := snapshot(t, s, "b")["k"]; got != "original" {
		t.Fatalf("stored value = %q, want original", got)
	}
}

func TestRollbackOnError(t *testing.T) {
	s, _ := openTemp(t)
	ctx := context.Background()
	if err := s.Update(ctx, func(tx Tx) error { return tx.Put("keep", "k", []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := s.Update(ctx, func(tx Tx) error {
		if err := tx.Put("keep", "k", []byte("changed")); err != nil {
			return err
		}
		if err := tx.Put("newbucket", "x", []byte("y")); err != nil {
			return err
		}
		if err := tx.Delete("keep", "k"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update error = %v, want boom", err)
	}
	if got := snapshot(t, s, "keep"); fmt.Sprint(got) != "map[k:v]" {
		t.Fatalf("keep after rollback = %v", got)
	}
	if got := snapshot(t, s, "newbucket"); len(got) != 0 {
		t.Fatalf("newbucket after rollback = %v", got)
	}

	// A panic rolls back too (and propagates to the caller).
	func() {
		defer func() {
			if recover() == nil {
				t.Error("panic was swallowed")
			}
		}()
		_ = s.Update(ctx, func(tx Tx) error {
			_ = tx.Put("keep", "panic", []byte("x"))
			panic("in transaction")
		})
	}()
	if got := snapshot(t, s, "keep"); fmt.Sprint(got) != "map[k:v]" {
		t.Fatalf("keep after panic = %v", got)
	}
}

func TestCancelledContext(t *testing.T) {
	s, _ := openTemp(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	if err := s.Update(ctx, func(Tx) error { called = true; return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("Update = %v, want context.Canceled", err)
	}
	if err := s.View(ctx, func(Tx) error { called = true; return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("View = %v, want context.Canceled", err)
	}
	if called {
		t.Error("fn ran with a cancelled context")
	}
}

func TestPersistsAcrossReopen(t *testing.T) {
	s, path := openTemp(t)
	ctx := context.Background()
	if err := s.Update(ctx, func(tx Tx) error {
		for i := 0; i < 100; i++ {
			if err := tx.Put("b", fmt.Sprintf("k%03d", i), []byte(strconv.Itoa(i))); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenBolt(path, BoltOptions{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s2.Close()
	got := snapshot(t, s2, "b")
	if len(got) != 100 || got["k042"] != "42" {
		t.Fatalf("after reopen: %d keys, k042=%q", len(got), got["k042"])
	}
	if err := checkConsistent(s2); err != nil {
		t.Fatal(err)
	}
}

func TestSecondProcessGetsErrLocked(t *testing.T) {
	_, path := openTemp(t) // this process holds the lock
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out := runHelper(ctx, t, "open", path)
	if !strings.HasPrefix(out, "locked=true") {
		t.Fatalf("child output = %q, want ErrLocked", out)
	}
	if !strings.Contains(out, "another provisiond is using "+path) {
		t.Fatalf("error does not name the file: %q", out)
	}
}

func TestLockReleasedOnClose(t *testing.T) {
	s, path := openTemp(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out := runHelper(ctx, t, "open", path); out != "opened" {
		t.Fatalf("child output = %q, want opened", out)
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := OpenBolt("", BoltOptions{}); err == nil {
		t.Error("empty path accepted")
	}
	// A directory where the file should be.
	dir := t.TempDir()
	if _, err := OpenBolt(dir, BoltOptions{}); err == nil || errors.Is(err, ErrLocked) {
		t.Errorf("opening a directory: %v", err)
	}
	// A file that is not a bbolt database.
	junk := filepath.Join(dir, "junk.db")
	if err := os.WriteFile(junk, []byte(strings.Repeat("not a database ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenBolt(junk, BoltOptions{}); err == nil || !strings.Contains(err.Error(), junk) {
		t.Errorf("opening junk: %v", err)
	}
}

// TestAcknowledgedWritesSurviveSIGKILL runs a writer child that
// acknowledges each committed Update on stdout, kills it with SIGKILL
// mid-stream, and checks that every acknowledged key is in the reopened
// database and that the file is consistent.
func TestAcknowledgedWritesSurviveSIGKILL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crash.db")
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=writer", helperPathEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	const killAfter = 150
	acked := map[int]bool{}
	sc := bufio.NewScanner(stdout)
	killed := false
	for sc.Scan() {
		n, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "ack "))
		if err != nil {
			t.Fatalf("bad ack line %q", sc.Text())
		}
		acked[n] = true
		if !killed && len(acked) >= killAfter {
			// Kill while the child is in the middle of further writes;
			// keep reading: acks already in the pipe still count.
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	waitErr := cmd.Wait()
	if !killed {
		t.Fatalf("writer ended before being killed: %v", waitErr)
	}
	if ctx.Err() != nil {
		t.Fatal("writer timed out")
	}
	s, err := OpenBolt(path, BoltOptions{})
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()
	got := snapshot(t, s, "crash")
	for n := range acked {
		key := "k" + strconv.Itoa(n)
		if got[key] != "value-"+key {
			t.Errorf("acknowledged key %s missing or wrong: %q", key, got[key])
		}
	}
	if len(got) < len(acked) {
		t.Errorf("found %d keys, %d acknowledged", len(got), len(acked))
	}
	if err := checkConsistent(s); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d writes acknowledged before/around SIGKILL, %d keys found", len(acked), len(got))
}

func runHelper(ctx context.Context, t *testing.T, role, path string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+role, helperPathEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper %s: %v (ctx: %v)", role, err, ctx.Err())
	}
	return strings.TrimSpace(string(out))
}

func snapshot(t *testing.T, s Store, bucket string) map[string]string {
	t.Helper()
	res := map[string]string{}
	if err := s.View(context.Background(), func(tx Tx) error {
		return tx.ForEach(bucket, func(k string, v []byte) error {
			res[k] = string(v)
			return nil
		})
	}); err != nil {
		t.Fatalf("snapshot %s: %v", bucket, err)
	}
	return res
}
