package transporttest

// SetSizes sets the sizes of the kit's large call and
// snapshot, for the kit's own tests, until the returned function restores
// them. Call it before any kit runs, not while one does.
func SetSizes(call, snapshot int) (restore func()) {
	oldCall, oldSnapshot := bigPayload, snapshotSize
	bigPayload, snapshotSize = call, snapshot
	return func() { bigPayload, snapshotSize = oldCall, oldSnapshot }
}
