package forensics

// checkSyscalls is not built yet.
func checkSyscalls(c *Context) ([]Finding, CheckResult) {
	return nil, CheckResult{Status: StatusNotChecked, Note: "not built yet"}
}
