Feature: Crash and resume
  As the Baton engine
  I want an instance to survive the loss of the process that ran it
  So that durable flows finish exactly once

  # The runner starts the instance in a runtime of its own, drops that runtime (and every task it
  # spawned) as soon as the start is durable, then resumes from the same SQLite file with a new
  # runtime. The step fails if the instance had already ended before the crash.
  Scenario: Resume after a crash right after the start
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.0'
      namespace: baton
      name: crash-after-start
      version: '1.0.0'
    do:
      - pause:
          wait:
            milliseconds: 100
      - done:
          set:
            resumed: true
            n: ${ .n }
    """
    And given the workflow input is:
    """yaml
    n: 3
    """
    When the workflow is executed, the process crashes after 0 ledger requests and is resumed
    Then the workflow should complete with output:
    """yaml
    resumed: true
    n: 3
    """
    And done should complete

  # The crash happens while the ledger call is in flight (the ledger applies the effect, then
  # delays its answer). The resumed instance re-sends the call with the same idempotency key:
  # the ledger receives two requests carrying one key, and applies it once.
  Scenario: Resume after a crash during a call applies the effect once
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.0'
      namespace: baton
      name: crash-during-call
      version: '1.0.0'
    do:
      - pay:
          call: http
          with:
            method: post
            endpoint:
              uri: http://baton-fake.test/ledger/effects?delay_ms=300
            body:
              amount: 5
      - record:
          set:
            applied: ${ .applied }
    """
    When the workflow is executed, the process crashes after 1 ledger request and is resumed
    Then the workflow should complete with output:
    """yaml
    applied: 1
    """
    And the ledger should have recorded 1 distinct idempotency keys
    And the ledger should have received 2 requests
