package server

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"time"
)

// space watches the free space of the data dir's disk. Below the reserve
// nimbus takes no new work that would write there — uploads answer 507,
// async calls and events 503 with Retry-After, /readyz says not ready,
// function log lines are dropped (and counted) and call records wait — so
// that JetStream itself never meets a full disk from nimbus's own writes;
// when space returns, all of it works again without a restart.
type space struct {
	dir     string
	reserve int64 // 0: a tenth of the disk, at most 64 MiB
	log     *slog.Logger

	mu      sync.Mutex
	checked time.Time
	err     error
}

// check returns an error saying how full the disk is when it is below the
// reserve. It reads the disk at most every 250ms.
func (s *space) check() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now := time.Now(); now.Sub(s.checked) < 250*time.Millisecond {
		return s.err
	} else {
		s.checked = now
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(s.dir, &fs); err != nil {
		return nil // cannot tell: let the writes say
	}
	free := int64(fs.Bavail) * fs.Bsize
	reserve := s.reserve
	if reserve == 0 {
		reserve = min(int64(fs.Blocks)*fs.Bsize/10, 64<<20)
	}
	var err error
	if free < reserve {
		// Anonymous callers see this (/readyz, async, events): where and
		// how full is for the log.
		err = errDiskFull
	}
	switch {
	case err != nil && s.err == nil:
		s.log.Error(fmt.Sprintf("the data dir's disk is full (%s: %s free, under the %s nimbus keeps in reserve); uploads, async calls and events are refused and function log lines dropped until space returns: free space on it", s.dir, mib(free), mib(reserve)),
			"dir", s.dir, "free_bytes", free, "reserve_bytes", reserve)
	case err == nil && s.err != nil:
		s.log.Info("the data dir's disk has room again", "dir", s.dir, "free_bytes", free)
	}
	s.err = err
	return err
}

func (s *space) ok() bool { return s.check() == nil }

// errDiskFull is what callers are told.
var errDiskFull = errors.New("the disk nimbus stores to is full (under the reserve it keeps free): the operator must free space on it (nimbus's log says where); retry later")

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
