Feature: Events
  As the Baton engine
  I want listen and emit tasks to consume and produce CloudEvents as the DSL says
  So that event-driven flows behave as written

  # A listen task's output is the ordered list of the events it consumed, read as their data
  # (`listen.read` defaults to `data`). Events that match no filter are not consumed.
  Scenario: Listen to one event
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.0'
      namespace: baton
      name: listen-one
      version: '1.0.0'
    do:
      - waitForPayment:
          listen:
            to:
              one:
                with:
                  type: com.example.payment.received
    """
    When the workflow is executed and the events are published:
    """yaml
    - specversion: '1.0'
      id: evt-1
      source: https://shop.example.com
      type: com.example.order.placed
      data:
        orderId: 7
    - specversion: '1.0'
      id: evt-2
      source: https://payments.example.com
      type: com.example.payment.received
      data:
        orderId: 7
        amount: 12
    """
    Then the workflow should complete with output:
    """yaml
    - orderId: 7
      amount: 12
    """
    And waitForPayment should complete

  # `any` completes on the first event matching any filter; a `${ }` property is a predicate
  # on that attribute.
  Scenario: Listen to any event with a data predicate
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.0'
      namespace: baton
      name: listen-any
      version: '1.0.0'
    do:
      - watchVitals:
          listen:
            to:
              any:
                - with:
                    type: com.example.vitals.temperature
                    data: ${ .celsius > 38 }
                - with:
                    type: com.example.vitals.bpm
                    data: ${ .bpm > 100 }
    """
    When the workflow is executed and the events are published:
    """yaml
    - specversion: '1.0'
      id: t-1
      source: https://ward.example.com
      type: com.example.vitals.temperature
      data:
        celsius: 37
    - specversion: '1.0'
      id: b-1
      source: https://ward.example.com
      type: com.example.vitals.bpm
      data:
        bpm: 120
    """
    Then the workflow should complete with output:
    """yaml
    - bpm: 120
    """

  # `all` waits until every filter has matched an event; consumption order is arrival order.
  Scenario: Listen to all events
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.0'
      namespace: baton
      name: listen-all
      version: '1.0.0'
    do:
      - gather:
          listen:
            to:
              all:
                - with:
                    type: com.example.approval.legal
                - with:
                    type: com.example.approval.finance
          output:
            as: '{ approvals: [ .[].by ] }'
    """
    When the workflow is executed and the events are published:
    """yaml
    - specversion: '1.0'
      id: a-1
      source: https://approvals.example.com
      type: com.example.approval.finance
      data:
        by: finance
    - specversion: '1.0'
      id: a-2
      source: https://approvals.example.com
      type: com.example.approval.legal
      data:
        by: legal
    """
    Then the workflow should complete with output:
    """yaml
    approvals: [ finance, legal ]
    """

  # The emitted event is the task's output; `${ }` in its properties and data is evaluated
  # against the task input.
  Scenario: Emit an event with evaluated data
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.0'
      namespace: baton
      name: emit-data
      version: '1.0.0'
    do:
      - announce:
          emit:
            event:
              with:
                source: https://orders.example.com
                type: com.example.order.shipped
                subject: ${ "order-\(.orderId)" }
                data:
                  orderId: ${ .orderId }
                  total: ${ [ .items[].price ] | add }
    """
    And given the workflow input is:
    """yaml
    orderId: 42
    items:
      - price: 5
      - price: 7.5
    """
    When the workflow is executed
    Then the workflow should complete
    And the workflow output should have properties 'id', 'specversion', 'time', 'source', 'type', 'data'
    And the workflow output should have a 'subject' property with value:
    """yaml
    order-42
    """
    And the workflow output should have a 'data' property with value:
    """yaml
    orderId: 42
    total: 12.5
    """
