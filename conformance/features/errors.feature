Feature: Errors, retries and nested handlers
  As the Baton engine
  I want try/catch with retry policies, nested handlers and reusable errors to work as the DSL says
  So that failures are handled where the flow says

  # The fake server's /flaky/{key}?fail=2 answers 503 twice, then 200 with the attempt number.
  Scenario: Retry with exponential backoff until the call succeeds
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.0'
      namespace: baton
      name: retry-succeeds
      version: '1.0.0'
    do:
      - tryFlaky:
          try:
            - callFlaky:
                call: http
                with:
                  method: get
                  endpoint:
                    uri: http://baton-fake.test/flaky/retry-succeeds?fail=2
          catch:
            errors:
              with:
                type: https://serverlessworkflow.io/spec/1.0.0/errors/communication
                status: 503
            retry:
              delay:
                milliseconds: 10
              backoff:
                exponential: {}
              limit:
                attempt:
                  count: 5
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    attempts: 3
    """
    And the flaky endpoint 'retry-succeeds' should have been called 3 times

  Scenario: Retries run out and the error propagates
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.0'
      namespace: baton
      name: retry-exhausted
      version: '1.0.0'
    do:
      - tryFlaky:
          try:
            - callFlaky:
                call: http
                with:
                  method: get
                  endpoint:
                    uri: http://baton-fake.test/flaky/retry-exhausted?fail=2
          catch:
            errors:
              with:
                status: 503
            retry:
              delay:
                milliseconds: 10
              backoff:
                exponential: {}
              limit:
                attempt:
                  count: 1
    """
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    type: https://serverlessworkflow.io/spec/1.0.0/errors/communication
    status: 503
    """

  # The inner catch only takes 404s, so the 503 goes past it to the outer one.
  Scenario: Nested try where only the outer catch matches
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.0'
      namespace: baton
      name: nested-try
      version: '1.0.0'
    do:
      - outer:
          try:
            - inner:
                try:
                  - failing:
                      call: http
                      with:
                        method: get
                        endpoint:
                          uri: http://baton-fake.test/status/503
                catch:
                  errors:
                    with:
                      status: 404
                  do:
                    - innerHandler:
                        set:
                          handledBy: inner
          catch:
            errors:
              with:
                type: https://serverlessworkflow.io/spec/1.0.0/errors/communication
                status: 503
            as: failure
            do:
              - outerHandler:
                  set:
                    handledBy: outer
                    status: ${ $failure.status }
                    instance: ${ $failure.instance }
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    handledBy: outer
    status: 503
    instance: /do/0/outer/try/0/inner/try/0/failing
    """
    And outerHandler should run last

  Scenario: Raise a reusable error from use.errors
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.0'
      namespace: baton
      name: raise-reusable
      version: '1.0.0'
    use:
      errors:
        outOfStock:
          type: https://baton.example/errors/out-of-stock
          status: 409
          title: Out of stock
    do:
      - checkStock:
          raise:
            error: outOfStock
    """
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    type: https://baton.example/errors/out-of-stock
    status: 409
    title: Out of stock
    instance: /do/0/checkStock
    """
    And checkStock should fault
