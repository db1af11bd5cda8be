Feature: Waits and timeouts
  As the Baton engine
  I want waits to pause a flow and timeouts to end work that takes too long
  So that time in flows behaves as written

  Scenario: A short wait, then the next task
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.0'
      namespace: baton
      name: short-wait
      version: '1.0.0'
    do:
      - pause:
          wait: PT0.05S
      - done:
          set:
            waited: true
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    waited: true
    """
    And pause should run before done
    And done should run last

  # A task that outlives its timeout faults with the standard timeout error at that task.
  Scenario: Task timeout
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.0'
      namespace: baton
      name: task-timeout
      version: '1.0.0'
    do:
      - slow:
          wait: PT5S
          timeout:
            after:
              milliseconds: 50
      - never:
          set:
            reached: true
    """
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    type: https://serverlessworkflow.io/spec/1.0.0/errors/timeout
    status: 408
    instance: /do/0/slow
    """

  Scenario: Workflow timeout
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.0'
      namespace: baton
      name: workflow-timeout
      version: '1.0.0'
    timeout:
      after:
        milliseconds: 50
    do:
      - first:
          set:
            started: true
      - slow:
          wait: PT5S
    """
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    type: https://serverlessworkflow.io/spec/1.0.0/errors/timeout
    status: 408
    """
    And first should complete
