package main

// The process log and where both logs go. log_file takes Aralez's form
// "path, size_mb, keep, compress": the file is rotated by size by
// lumberjack, which keeps `keep` rotated files (gzipped with compress).
// SIGUSR1 reopens the file at its path (the nginx and HAProxy convention
// for an external logrotate that renames the file). Without log_file the
// process log goes to stderr and the access log to stdout.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/aralez-go/aralez/config"
)

// levelTrace is log_level trace: more verbose than debug, as in Aralez.
const levelTrace = slog.LevelDebug - 4

// logLevel maps log_level to a slog level; ok is false for "off".
func logLevel(s string) (level slog.Level, ok bool) {
	switch s {
	case "off":
		return 0, false
	case "trace":
		return levelTrace, true
	case "debug":
		return slog.LevelDebug, true
	case "warn":
		return slog.LevelWarn, true
	case "error":
		return slog.LevelError, true
	}
	return slog.LevelInfo, true
}

// logSink is where the process log (and, with log_file, the access log)
// is written: a rotating log file or stderr. It is safe for concurrent
// use.
type logSink struct {
	file   *lumberjack.Logger // nil without log_file
	stderr io.Writer
}

// Write writes p to the log file, or to stderr without one.
func (s *logSink) Write(p []byte) (int, error) {
	if s.file != nil {
		return s.file.Write(p)
	}
	return s.stderr.Write(p)
}

// access returns the access log's writer: the log file, else stdout.
func (s *logSink) access(stdout io.Writer) io.Writer {
	if s.file != nil {
		return s.file
	}
	return stdout
}

// reopen closes the log file; the next write opens the file at its path
// again. When an external logrotate has renamed it, the new file is
// created first, with the mode of the first one (0640), so that it does
// not get lumberjack's 0600 and a log collector reading through the
// file's group keeps reading. Lines written before go to the renamed
// file, so none is lost. Without log_file it does nothing and reports
// false.
func (s *logSink) reopen() (bool, error) {
	if s.file == nil {
		return false, nil
	}
	err := createLogFile(s.file.Filename)
	return true, errors.Join(err, s.file.Close())
}

// createLogFile creates the log file at path with mode 0640 (before the
// umask) when it does not exist; an existing file is left as it is.
func createLogFile(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	return f.Close()
}

// close closes the log file, if any.
func (s *logSink) close() {
	if s.file != nil {
		s.file.Close()
	}
}

// newLogger returns the process logger for main.yaml's log_level,
// log_file and log_structured (JSON lines), and the sink it writes to.
// log_file is opened (created with mode 0640) at once, so that an
// unwritable path fails the start rather than the first line.
func newLogger(m *config.Main, stderr io.Writer) (*slog.Logger, *logSink, error) {
	sink := &logSink{stderr: stderr}
	if m.LogFile != "" {
		if err := createLogFile(m.LogFile); err != nil {
			return nil, nil, fmt.Errorf("opening log_file: %w", err)
		}
		sink.file = &lumberjack.Logger{
			Filename:   m.LogFile,
			MaxSize:    m.LogFileSizeMB,
			MaxBackups: m.LogFileKeep,
			Compress:   m.LogFileCompress,
		}
	}
	level, on := logLevel(m.LogLevel)
	if !on {
		return slog.New(slog.DiscardHandler), sink, nil
	}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: traceName}
	if m.LogStructured != "" {
		return slog.New(slog.NewJSONHandler(sink, opts)), sink, nil
	}
	return slog.New(slog.NewTextHandler(sink, opts)), sink, nil
}

// traceName writes levelTrace as "TRACE" rather than slog's "DEBUG-4".
func traceName(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.LevelKey {
		if l, ok := a.Value.Any().(slog.Level); ok && l <= levelTrace {
			a.Value = slog.StringValue("TRACE")
		}
	}
	return a
}

// reopenLogs reopens the log file on each signal from usr1 until ctx is
// done.
func reopenLogs(ctx context.Context, usr1 <-chan os.Signal, sink *logSink, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-usr1:
			if ok, err := sink.reopen(); err != nil {
				log.Error("SIGUSR1: reopening the log file", "err", err)
			} else if ok {
				log.Info("SIGUSR1: log file reopened")
			} else {
				log.Debug("SIGUSR1: no log_file to reopen")
			}
		}
	}
}
