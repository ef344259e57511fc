package sdktest

// SetTransportSizes sets the sizes of the transport kit's large call and
// snapshot, for the kit's own tests, until the returned function restores
// them. Call it before any kit runs, not while one does.
func SetTransportSizes(call, snapshot int) (restore func()) {
	oldCall, oldSnapshot := bigPayload, snapshotSize
	bigPayload, snapshotSize = call, snapshot
	return func() { bigPayload, snapshotSize = oldCall, oldSnapshot }
}
