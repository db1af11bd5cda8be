Feature: Data and control flow
  As the Baton engine
  I want context export, forks, conditions and flow directives to behave as the DSL says
  So that data moves through flows as written

  # `export.as` replaces `$context`, which later tasks (and later exports) can read.
  Scenario: Export to the context and read it later
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.0'
      namespace: baton
      name: export-context
      version: '1.0.0'
    do:
      - login:
          set:
            user: alice
          export:
            as: '{ user: .user }'
      - other:
          set:
            unrelated: true
          export:
            as: '${ $context + { seen: .unrelated } }'
      - greet:
          set:
            greeting: ${ "hello " + $context.user }
            context: ${ $context }
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    greeting: hello alice
    context:
      user: alice
      seen: true
    """

  # Without `compete`, a fork's output lists every branch's output in declaration order, even
  # when the first branch finishes last.
  Scenario: Fork without compete
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.0'
      namespace: baton
      name: fork-all
      version: '1.0.0'
    do:
      - both:
          fork:
            branches:
              - left:
                  do:
                    - pause:
                        wait:
                          milliseconds: 30
                    - setLeft:
                        set:
                          side: left
              - right:
                  set:
                    side: right
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    - side: left
    - side: right
    """
    And right should complete
    And setLeft should complete

  # A task whose `if` is false is skipped and its raw input becomes its output.
  Scenario: A false if skips the task
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.0'
      namespace: baton
      name: if-skip
      version: '1.0.0'
    do:
      - discount:
          if: ${ .vip }
          set:
            price: ${ .price / 2 }
      - label:
          set:
            price: ${ .price }
            vip: ${ .vip }
    """
    And given the workflow input is:
    """yaml
    vip: false
    price: 100
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    price: 100
    vip: false
    """
    And discount should be skipped
    And label should run last

  Scenario: A true if runs the task
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.0'
      namespace: baton
      name: if-run
      version: '1.0.0'
    do:
      - discount:
          if: ${ .vip }
          set:
            price: ${ .price / 2 }
    """
    And given the workflow input is:
    """yaml
    vip: true
    price: 100
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    price: 50
    """
    And discount should complete

  # `exit` ends the current scope (the nested do); the flow goes on after it.
  Scenario: Switch then exit in a nested do
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.0'
      namespace: baton
      name: switch-exit
      version: '1.0.0'
    do:
      - inner:
          do:
            - check:
                switch:
                  - stop:
                      when: .stop
                      then: exit
            - notReached:
                set:
                  reached: true
      - after:
          set:
            after: true
            reached: ${ .reached // false }
    """
    And given the workflow input is:
    """yaml
    stop: true
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    after: true
    reached: false
    """
    And check should run after inner
    And after should run last
