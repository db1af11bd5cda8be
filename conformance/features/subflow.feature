Feature: Sub-workflows
  As the Baton engine
  I want `run: workflow` to run another registered flow
  So that flows can be composed

  Scenario: Run a sub-workflow and use its output
    Given a sub-workflow with definition:
    """yaml
    document:
      dsl: '1.0.0'
      namespace: baton
      name: double
      version: '1.0.0'
    do:
      - double:
          set:
            value: ${ .value * 2 }
    """
    And a workflow with definition:
    """yaml
    document:
      dsl: '1.0.0'
      namespace: baton
      name: parent
      version: '1.0.0'
    do:
      - callChild:
          run:
            workflow:
              namespace: baton
              name: double
              version: '1.0.0'
              input:
                value: ${ .n }
    """
    And given the workflow input is:
    """yaml
    n: 21
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    value: 42
    """
    And callChild should complete

  # An error raised in the sub-workflow faults the run task and can be caught in the parent.
  Scenario: Catch an error raised by a sub-workflow
    Given a sub-workflow with definition:
    """yaml
    document:
      dsl: '1.0.0'
      namespace: baton
      name: refuse
      version: '1.0.0'
    do:
      - refuse:
          raise:
            error:
              type: https://baton.example/errors/refused
              status: 422
              title: Refused
    """
    And a workflow with definition:
    """yaml
    document:
      dsl: '1.0.0'
      namespace: baton
      name: parent-catches
      version: '1.0.0'
    do:
      - guarded:
          try:
            - callChild:
                run:
                  workflow:
                    namespace: baton
                    name: refuse
                    version: '1.0.0'
          catch:
            errors:
              with:
                status: 422
            do:
              - recover:
                  set:
                    caught: ${ $error.type }
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    caught: https://baton.example/errors/refused
    """
