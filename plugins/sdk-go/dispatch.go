package sdk

// Calls into the registered Strategy for the exports. A panic in the
// strategy becomes a classified error (class other) rather than a trap, so
// the host records a reason; a missing Export call is reported the same way.

// notRegistered is the error every call gets when no strategy is exported.
func notRegistered() *StrategyError {
	return NewError(Other, "no strategy is registered: call sdk.Export from an init function of the plugin's main package")
}

// panicked turns a recovered panic into an error, and logs it.
func panicked(call string, r any) *StrategyError {
	var reason string
	switch v := r.(type) {
	case error:
		reason = v.Error()
	case string:
		reason = v
	default:
		reason = "a value that is neither a string nor an error"
	}
	message := "the strategy panicked in " + call + ": " + reason
	Log(LevelError, message)
	return NewError(Other, message)
}

func callPrepare(config string) (err *StrategyError) {
	defer func() {
		if r := recover(); r != nil {
			err = panicked("prepare", r)
		}
	}()
	if exported == nil {
		return notRegistered()
	}
	return exported.Prepare(config)
}

func callExecute(item Item, attempt Attempt, state []StateEntry) (s Success, err *StrategyError) {
	defer func() {
		if r := recover(); r != nil {
			s, err = Success{}, panicked("execute", r)
		}
	}()
	if exported == nil {
		return Success{}, notRegistered()
	}
	return exported.Execute(item, attempt, state)
}

func callOnError(item Item, failure StrategyError, attempt Attempt, state []StateEntry) (changes []StateChange) {
	defer func() {
		if r := recover(); r != nil {
			panicked("on-error", r)
			changes = nil
		}
	}()
	if exported == nil {
		return nil
	}
	return exported.OnError(item, failure, attempt, state)
}

func callCleanup() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = panicked("cleanup", r)
		}
	}()
	if exported == nil {
		return notRegistered()
	}
	return exported.Cleanup()
}
