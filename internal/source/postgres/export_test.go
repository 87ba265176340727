package postgres

// Crash stops src as a crashed replica stops: its heartbeats end and its connections close, but its open
// batches are not given back, so their rows wait for the lease to run out.
func Crash(src *Source) { src.shutdown(false) }
