//! The flow drawn as a graph in inline SVG: one box per task of the flow's `do` list, nested
//! `do`/`for`/`fork`/`try` drawn as groups holding their own tasks, edges for list order, `then:`
//! jumps and `switch` cases, and each box coloured by the task's state.
//!
//! Nodes are identified by the task's reference (the JSON Pointer the core uses in its task
//! events and problem details, e.g. `/do/1/approve/fork/branches/0/notify`), so states derived
//! from the journal attach to them without any mapping table. The layout is a plain top-down
//! column per task list; it needs no layout engine because flows are lists, not arbitrary graphs:
//! only jumps leave the column, and they are drawn as arcs on its right.

use std::collections::HashMap;
use std::fmt::Write as _;

use baton_flow::model::{FlowDirective, Task, TaskKind, TaskList, Workflow};

/// Where a task stands, as the dashboard colours it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskState {
    /// Not reached (yet).
    Pending,
    /// Started, with work in flight.
    Running,
    /// Started and only waiting: a timer, an event, or a person (an approval).
    Waiting,
    Completed,
    Faulted,
    /// Its `if` was false, or control jumped past it in a finished instance.
    Skipped,
    /// Stopped before it ended: the instance was cancelled, or the task lost a `fork` race.
    Cancelled,
    /// Ended, and its effect was undone since by its compensation.
    Compensated,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Running => "running",
            TaskState::Waiting => "waiting",
            TaskState::Completed => "completed",
            TaskState::Faulted => "faulted",
            TaskState::Skipped => "skipped",
            TaskState::Cancelled => "cancelled",
            TaskState::Compensated => "compensated",
        }
    }

    /// Fill colour of a task box. Attributes rather than a stylesheet, so that the SVG means the
    /// same thing when copied out of the page.
    pub fn fill(self) -> &'static str {
        match self {
            TaskState::Pending => "#f1f3f5",
            TaskState::Running => "#d0ebff",
            TaskState::Waiting => "#fff3bf",
            TaskState::Completed => "#d3f9d8",
            TaskState::Faulted => "#ffe3e3",
            TaskState::Skipped => "#ffffff",
            TaskState::Cancelled => "#e9ecef",
            TaskState::Compensated => "#e5dbff",
        }
    }

    pub fn stroke(self) -> &'static str {
        match self {
            TaskState::Pending => "#adb5bd",
            TaskState::Running => "#1c7ed6",
            TaskState::Waiting => "#f08c00",
            TaskState::Completed => "#2f9e44",
            TaskState::Faulted => "#e03131",
            TaskState::Skipped => "#ced4da",
            TaskState::Cancelled => "#495057",
            TaskState::Compensated => "#7048e8",
        }
    }
}

/// One task.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The task's reference (JSON Pointer into the definition).
    pub id: String,
    pub name: String,
    /// `call`, `switch`, `fork`, …
    pub kind: &'static str,
    /// A short description under the name (`call approval`, `wait`, …).
    pub detail: String,
    /// A group holding other tasks (`do`, `for`, `fork`, `try`).
    pub group: bool,
    pub state: TaskState,
    pub x: i32,
    pub y: i32,
    pub w: i32,
    pub h: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EdgeKind {
    /// The next task of the list.
    Next,
    /// A `then: <task>` jump.
    Then,
    /// A `switch` case, with its name.
    Case(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub kind: EdgeKind,
}

/// A caption over a column inside a group (`try`, `catch`).
#[derive(Debug, Clone, PartialEq)]
struct Caption {
    text: String,
    x: i32,
    y: i32,
}

#[derive(Debug, Clone, Default)]
pub struct Graph {
    /// Groups before the tasks they hold, so drawing in order puts children on top.
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    captions: Vec<Caption>,
    pub width: i32,
    pub height: i32,
}

const NODE_W: i32 = 190;
const NODE_H: i32 = 44;
const GAP_Y: i32 = 26;
const GAP_X: i32 = 24;
const PAD: i32 = 12;
const HEADER_H: i32 = 34;
const CAPTION_H: i32 = 16;
const MARGIN: i32 = 16;
/// How far the first jump arc bulges right of its column; each further arc of the list a bit
/// more, so that arcs between different tasks do not draw over each other.
const ARC_BASE: i32 = 28;
const ARC_STEP: i32 = 14;
/// Approximate width of one character of an edge label (11px sans-serif).
const LABEL_CHAR_W: i32 = 7;
const NAME_CHARS_MAX: usize = 24;

/// Builds the graph of `workflow`. `states` maps task references to states; a task without an
/// entry gets `default`.
pub fn build(
    workflow: &Workflow,
    states: &HashMap<String, TaskState>,
    default: TaskState,
) -> Graph {
    let mut b = Builder {
        graph: Graph::default(),
        states,
        default,
    };
    let (w, h) = b.list(&workflow.do_, "/do", MARGIN, MARGIN);
    b.graph.width = w + 2 * MARGIN;
    b.graph.height = h + 2 * MARGIN;
    b.graph
}

struct Builder<'a> {
    graph: Graph,
    states: &'a HashMap<String, TaskState>,
    default: TaskState,
}

/// The placed tasks of one list: (name, reference, node index).
type Placed = Vec<(String, String, usize)>;

impl Builder<'_> {
    fn state(&self, reference: &str) -> TaskState {
        self.states.get(reference).copied().unwrap_or(self.default)
    }

    /// Lays out a task list as a column at (x, y); returns its width and height.
    fn list(&mut self, list: &TaskList, reference: &str, x: i32, y: i32) -> (i32, i32) {
        let mut placed: Placed = Vec::new();
        let mut cy = y;
        let mut width = NODE_W;
        for (i, (name, task)) in list.0.iter().enumerate() {
            let task_ref = format!("{reference}/{i}/{name}");
            let index = self.graph.nodes.len();
            let (w, h) = self.task(name, task, &task_ref, x, cy);
            placed.push((name.clone(), task_ref, index));
            width = width.max(w);
            cy += h + GAP_Y;
        }
        let height = (cy - GAP_Y - y).max(0);
        let arcs = self.edges(list, &placed);
        // Jump arcs and their labels sit right of the column: the list is as wide as they reach.
        for (k, label_len) in arcs.iter().enumerate() {
            let reach = width + ARC_BASE + ARC_STEP * k as i32 + 6 + label_len * LABEL_CHAR_W;
            width = width.max(reach);
        }
        (width, height)
    }

    /// The edges leaving each task of a list. Returns, per jump arc, the length of its label.
    fn edges(&mut self, list: &TaskList, placed: &Placed) -> Vec<i32> {
        let by_name = |n: &str| placed.iter().find(|(name, _, _)| name == n);
        let mut arcs = Vec::new();
        for (i, (_, task)) in list.0.iter().enumerate() {
            let from = &placed[i].1;
            let next = placed.get(i + 1);
            let mut push = |to: &(String, String, usize), kind: EdgeKind, graph: &mut Graph| {
                let adjacent = next.is_some_and(|n| n.2 == to.2);
                if !adjacent {
                    arcs.push(match &kind {
                        EdgeKind::Case(c) => c.chars().count() as i32,
                        _ => 4,
                    });
                }
                graph.edges.push(Edge {
                    from: from.clone(),
                    to: to.1.clone(),
                    kind,
                });
            };
            let mut falls_through = true;
            if let TaskKind::Switch(cases) = &task.kind {
                for (case, c) in cases {
                    let target = match FlowDirective::parse(&c.then) {
                        FlowDirective::Continue => next,
                        FlowDirective::Goto(t) => by_name(&t),
                        FlowDirective::Exit | FlowDirective::End => None,
                    };
                    if let Some(t) = target {
                        push(t, EdgeKind::Case(case.clone()), &mut self.graph);
                    }
                    // A case without `when` is the default: no input passes the switch by.
                    if c.when.is_none() {
                        falls_through = false;
                    }
                }
            }
            if !falls_through {
                continue;
            }
            match task.base.then.as_ref().unwrap_or(&FlowDirective::Continue) {
                FlowDirective::Continue => {
                    if let Some(n) = next {
                        push(n, EdgeKind::Next, &mut self.graph);
                    }
                }
                FlowDirective::Goto(t) => {
                    if let Some(t) = by_name(t) {
                        push(t, EdgeKind::Then, &mut self.graph);
                    }
                }
                FlowDirective::Exit | FlowDirective::End => {}
            }
        }
        arcs
    }

    /// Places one task (a box, or a group with its children) at (x, y); returns its size.
    fn task(&mut self, name: &str, task: &Task, reference: &str, x: i32, y: i32) -> (i32, i32) {
        let index = self.graph.nodes.len();
        self.graph.nodes.push(Node {
            id: reference.to_string(),
            name: name.to_string(),
            kind: task.kind.keyword(),
            detail: detail(task),
            group: false,
            state: self.state(reference),
            x,
            y,
            w: NODE_W,
            h: NODE_H,
        });
        let inner_x = x + PAD;
        let inner_y = y + HEADER_H;
        let inner = match &task.kind {
            TaskKind::Do(list) => {
                Some(self.list(list, &format!("{reference}/do"), inner_x, inner_y))
            }
            TaskKind::For { do_, .. } => {
                Some(self.list(do_, &format!("{reference}/do"), inner_x, inner_y))
            }
            TaskKind::Fork { branches, .. } => {
                // Branches run side by side, so they are drawn side by side.
                let (mut bx, mut h) = (inner_x, 0);
                for (i, (bname, btask)) in branches.0.iter().enumerate() {
                    let bref = format!("{reference}/fork/branches/{i}/{bname}");
                    let (bw, bh) = self.task(bname, btask, &bref, bx, inner_y);
                    bx += bw + GAP_X;
                    h = h.max(bh);
                }
                Some(((bx - GAP_X - inner_x).max(0), h))
            }
            TaskKind::Try { try_, catch } => {
                let col_y = inner_y + CAPTION_H;
                self.caption("try", inner_x, col_y - 4);
                let (tw, th) = self.list(try_, &format!("{reference}/try"), inner_x, col_y);
                let (mut w, mut h) = (tw, th);
                if let Some(handler) = &catch.do_ {
                    let cx = inner_x + tw + GAP_X;
                    self.caption("catch", cx, col_y - 4);
                    let (cw, ch) = self.list(handler, &format!("{reference}/catch/do"), cx, col_y);
                    w = tw + GAP_X + cw;
                    h = h.max(ch);
                }
                Some((w, h + CAPTION_H))
            }
            _ => None,
        };
        let (w, h) = match inner {
            Some((iw, ih)) => ((iw + 2 * PAD).max(NODE_W), HEADER_H + ih + PAD),
            None => (NODE_W, NODE_H),
        };
        let node = &mut self.graph.nodes[index];
        node.group = inner.is_some();
        node.w = w;
        node.h = h;
        (w, h)
    }

    fn caption(&mut self, text: &str, x: i32, y: i32) {
        self.graph.captions.push(Caption {
            text: text.to_string(),
            x,
            y,
        });
    }
}

/// The line under a task's name: what it does, briefly.
fn detail(task: &Task) -> String {
    let mut d = match &task.kind {
        TaskKind::Call { function, .. } => format!("call {function}"),
        TaskKind::Fork { compete: true, .. } => "fork (compete)".into(),
        TaskKind::For { each, in_, .. } => format!("for {each} in {in_}"),
        TaskKind::Run(baton_flow::model::RunSpec::Workflow { name, version, .. }) => {
            format!("run {name}:{version}")
        }
        TaskKind::Switch(cases) => format!("switch ({} cases)", cases.len()),
        other => other.keyword().to_string(),
    };
    if task.base.if_.is_some() {
        d.push_str(" · if");
    }
    d
}

/// The reference of the list a task is in (`/do/1/x/do/0/y` → `/do/1/x/do`).
fn list_of(reference: &str) -> &str {
    let mut cut = reference;
    for _ in 0..2 {
        cut = cut.rsplit_once('/').map_or("", |(head, _)| head);
    }
    cut
}

/// Escapes text for XML content and attribute values.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

impl Graph {
    fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The SVG document. Every text from the flow is escaped here: task names and case names
    /// are user data.
    pub fn to_svg(&self) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            r##"<svg xmlns="http://www.w3.org/2000/svg" class="flow-graph" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="flow graph" font-family="system-ui, sans-serif">"##,
            w = self.width,
            h = self.height
        );
        s.push_str(r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#495057"/></marker></defs>"##);
        for n in &self.nodes {
            self.node_svg(&mut s, n);
        }
        for c in &self.captions {
            let _ = write!(
                s,
                r##"<text x="{}" y="{}" font-size="11" fill="#868e96">{}</text>"##,
                c.x,
                c.y,
                xml_escape(&c.text)
            );
        }
        self.edges_svg(&mut s);
        s.push_str("</svg>");
        s
    }

    fn node_svg(&self, s: &mut String, n: &Node) {
        let dash = if n.state == TaskState::Skipped {
            r#" stroke-dasharray="5 3""#
        } else {
            ""
        };
        let _ = write!(
            s,
            r#"<g class="node" data-ref="{id}" data-state="{st}"><title>{name} ({kind}): {st}</title><rect x="{x}" y="{y}" width="{w}" height="{h}" rx="7" fill="{fill}" stroke="{stroke}" stroke-width="{sw}"{dash}/>"#,
            id = xml_escape(&n.id),
            st = n.state.as_str(),
            name = xml_escape(&n.name),
            kind = n.kind,
            x = n.x,
            y = n.y,
            w = n.w,
            h = n.h,
            fill = if n.group && n.state == TaskState::Pending {
                "#fafbfc"
            } else {
                n.state.fill()
            },
            stroke = n.state.stroke(),
            sw = if matches!(n.state, TaskState::Running | TaskState::Waiting) {
                3
            } else {
                1
            },
        );
        let _ = write!(
            s,
            r##"<text x="{}" y="{}" font-size="13" font-weight="600" fill="#212529">{}</text><text x="{}" y="{}" font-size="11" fill="#495057">{} · {}</text></g>"##,
            n.x + 10,
            n.y + 18,
            xml_escape(&shorten(&n.name, NAME_CHARS_MAX)),
            n.x + 10,
            n.y + 34,
            xml_escape(&shorten(&n.detail, NAME_CHARS_MAX + 4)),
            n.state.as_str(),
        );
    }

    fn edges_svg(&self, s: &mut String) {
        // Arcs of one column are spread apart in the order they were made (as `list` reserved
        // room for them).
        let mut arcs_in_column: HashMap<&str, i32> = HashMap::new();
        for e in &self.edges {
            let (Some(a), Some(b)) = (self.node(&e.from), self.node(&e.to)) else {
                continue;
            };
            let label = match &e.kind {
                EdgeKind::Next => None,
                EdgeKind::Then => Some("then".to_string()),
                EdgeKind::Case(c) => Some(c.clone()),
            };
            let straight = b.y > a.y && b.x == a.x && self.is_next_below(a, b);
            if straight {
                let x = a.x + NODE_W / 2;
                let _ = write!(
                    s,
                    r##"<path class="edge" d="M{x},{y1} L{x},{y2}" stroke="#495057" fill="none" marker-end="url(#arrow)"/>"##,
                    y1 = a.y + a.h,
                    y2 = b.y - 2
                );
                if let Some(l) = label {
                    let _ = write!(
                        s,
                        r##"<text x="{}" y="{}" font-size="11" fill="#5c7cfa">{}</text>"##,
                        x + 6,
                        a.y + a.h + GAP_Y / 2 + 4,
                        xml_escape(&l)
                    );
                }
                continue;
            }
            let k = arcs_in_column.entry(list_of(&a.id)).or_insert(0);
            let right = a.x.max(b.x) + a.w.max(b.w).max(NODE_W);
            let bulge = right + ARC_BASE + ARC_STEP * *k;
            *k += 1;
            let (ax, ay) = (a.x + a.w, a.y + NODE_H / 2);
            let (bx, by) = (b.x + b.w, b.y + NODE_H / 2);
            let _ = write!(
                s,
                r##"<path class="edge jump" d="M{ax},{ay} C{bulge},{ay} {bulge},{by} {bx2},{by}" stroke="#5c7cfa" stroke-dasharray="4 3" fill="none" marker-end="url(#arrow)"/>"##,
                bx2 = bx + 2
            );
            if let Some(l) = label {
                let _ = write!(
                    s,
                    r##"<text x="{}" y="{}" font-size="11" fill="#5c7cfa">{}</text>"##,
                    bulge - (bulge - right) / 4 + 4,
                    (ay + by) / 2 + 4,
                    xml_escape(&l)
                );
            }
        }
    }

    /// Whether `b` is the task right after `a` in the same column (nothing drawn between them).
    fn is_next_below(&self, a: &Node, b: &Node) -> bool {
        let gap = b.y - (a.y + a.h);
        gap == GAP_Y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(yaml: &str) -> Workflow {
        let opts = baton_flow::ValidateOptions {
            known_functions: vec!["approval".into()],
        };
        match baton_flow::load_flow(yaml, &opts) {
            Ok(l) => l.workflow,
            Err(d) => panic!("test flow invalid: {d:?}"),
        }
    }

    const SWITCH_FORK: &str = r#"
document: {dsl: '1.0.0', namespace: test, name: g, version: '1.0.0'}
do:
  - check:
      switch:
        - big:
            when: ${ .n > 10 }
            then: review
        - fallback:
            then: notify
  - review:
      fork:
        branches:
          - ask:
              call: approval
              with: {title: t, assignees: ann, window: PT1H}
          - note:
              set: {noted: true}
  - notify:
      set: {done: true}
      then: end
  - unreachable:
      set: {x: 1}
"#;

    fn ids(g: &Graph) -> Vec<&str> {
        g.nodes.iter().map(|n| n.id.as_str()).collect()
    }

    fn edge(from: &str, to: &str, kind: EdgeKind) -> Edge {
        Edge {
            from: from.into(),
            to: to.into(),
            kind,
        }
    }

    #[test]
    fn a_switch_and_a_fork_give_their_nodes_and_edges() {
        let g = build(&flow(SWITCH_FORK), &HashMap::new(), TaskState::Pending);
        assert_eq!(
            ids(&g),
            [
                "/do/0/check",
                "/do/1/review",
                "/do/1/review/fork/branches/0/ask",
                "/do/1/review/fork/branches/1/note",
                "/do/2/notify",
                "/do/3/unreachable",
            ]
        );
        // The switch has a default case, so it never falls through; `then: end` ends the list;
        // fork branches are not chained to each other.
        assert_eq!(
            g.edges,
            [
                edge("/do/0/check", "/do/1/review", EdgeKind::Case("big".into())),
                edge(
                    "/do/0/check",
                    "/do/2/notify",
                    EdgeKind::Case("fallback".into())
                ),
                edge("/do/1/review", "/do/2/notify", EdgeKind::Next),
            ]
        );
        let review = &g.nodes[1];
        assert!(review.group && review.kind == "fork");
        let (ask, note) = (&g.nodes[2], &g.nodes[3]);
        // Branches side by side inside the fork's box.
        assert_eq!(ask.y, note.y);
        assert!(note.x >= ask.x + ask.w);
        assert!(review.x < ask.x && note.x + note.w <= review.x + review.w);
        assert!(ask.y + ask.h <= review.y + review.h);
        assert_eq!(ask.detail, "call approval");
        // Everything fits in the drawing.
        for n in &g.nodes {
            assert!(n.x + n.w <= g.width && n.y + n.h <= g.height, "{n:?}");
        }
    }

    #[test]
    fn a_switch_without_default_falls_through_and_then_jumps_back() {
        let g = build(
            &flow(
                r#"
document: {dsl: '1.0.0', namespace: test, name: g, version: '1.0.0'}
do:
  - first:
      set: {n: 1}
  - route:
      switch:
        - again:
            when: ${ .n < 3 }
            then: first
  - last:
      set: {n: 3}
      then: first
"#,
            ),
            &HashMap::new(),
            TaskState::Pending,
        );
        assert_eq!(
            g.edges,
            [
                edge("/do/0/first", "/do/1/route", EdgeKind::Next),
                edge("/do/1/route", "/do/0/first", EdgeKind::Case("again".into())),
                edge("/do/1/route", "/do/2/last", EdgeKind::Next),
                edge("/do/2/last", "/do/0/first", EdgeKind::Then),
            ]
        );
        let svg = g.to_svg();
        // Two jumps drawn as arcs, one straight edge per list step.
        assert_eq!(svg.matches(r#"class="edge jump""#).count(), 2);
        assert_eq!(svg.matches(r#"class="edge""#).count(), 2);
        assert!(svg.contains(">again</text>") && svg.contains(">then</text>"));
    }

    #[test]
    fn states_colour_the_nodes() {
        let states = HashMap::from([
            ("/do/0/check".to_string(), TaskState::Completed),
            ("/do/1/review".to_string(), TaskState::Running),
            (
                "/do/1/review/fork/branches/0/ask".to_string(),
                TaskState::Waiting,
            ),
            (
                "/do/1/review/fork/branches/1/note".to_string(),
                TaskState::Faulted,
            ),
            ("/do/3/unreachable".to_string(), TaskState::Skipped),
        ]);
        let g = build(&flow(SWITCH_FORK), &states, TaskState::Pending);
        let svg = g.to_svg();
        let node_tag = |id: &str| {
            let start = svg
                .find(&format!(r#"data-ref="{id}""#))
                .unwrap_or_else(|| panic!("no node {id} in {svg}"));
            let end = start + svg[start..].find("</g>").unwrap();
            svg[start..end].to_string()
        };
        for (id, state) in [
            ("/do/0/check", TaskState::Completed),
            ("/do/1/review/fork/branches/0/ask", TaskState::Waiting),
            ("/do/1/review/fork/branches/1/note", TaskState::Faulted),
            ("/do/2/notify", TaskState::Pending),
            ("/do/3/unreachable", TaskState::Skipped),
        ] {
            let tag = node_tag(id);
            assert!(
                tag.contains(&format!(r#"data-state="{}""#, state.as_str())),
                "{tag}"
            );
            assert!(
                tag.contains(&format!(r#"fill="{}""#, state.fill())),
                "{tag}"
            );
            assert!(
                tag.contains(&format!(r#"stroke="{}""#, state.stroke())),
                "{tag}"
            );
        }
        // Distinct states are told apart by colour, not only by the word.
        let fills: std::collections::HashSet<_> = [
            TaskState::Pending,
            TaskState::Running,
            TaskState::Waiting,
            TaskState::Completed,
            TaskState::Faulted,
            TaskState::Skipped,
            TaskState::Cancelled,
        ]
        .iter()
        .map(|s| s.fill())
        .collect();
        assert_eq!(fills.len(), 7);
        assert!(node_tag("/do/3/unreachable").contains("stroke-dasharray"));
        // A finished instance passes `Skipped` for tasks never reached.
        let g = build(&flow(SWITCH_FORK), &states, TaskState::Skipped);
        assert_eq!(g.nodes[4].state, TaskState::Skipped);
    }

    #[test]
    fn nested_do_for_and_try_are_groups_with_their_own_references() {
        let g = build(
            &flow(
                r#"
document: {dsl: '1.0.0', namespace: test, name: g, version: '1.0.0'}
do:
  - outer:
      do:
        - each:
            for: {each: item, in: '${ .items }'}
            do:
              - one: {set: {x: 1}}
  - guarded:
      try:
        - risky: {set: {y: 1}}
      catch:
        do:
          - recover: {set: {z: 1}}
"#,
            ),
            &HashMap::new(),
            TaskState::Pending,
        );
        assert_eq!(
            ids(&g),
            [
                "/do/0/outer",
                "/do/0/outer/do/0/each",
                "/do/0/outer/do/0/each/do/0/one",
                "/do/1/guarded",
                "/do/1/guarded/try/0/risky",
                "/do/1/guarded/catch/do/0/recover",
            ]
        );
        assert!(g.nodes[0].group && g.nodes[1].group && !g.nodes[2].group);
        // The catch column is beside the try column.
        assert!(g.nodes[5].x > g.nodes[4].x + g.nodes[4].w);
        assert_eq!(
            g.edges,
            [edge("/do/0/outer", "/do/1/guarded", EdgeKind::Next)]
        );
        let svg = g.to_svg();
        assert!(svg.contains(">try</text>") && svg.contains(">catch</text>"));
    }

    #[test]
    fn names_from_the_flow_are_escaped() {
        // Built from JSON directly: the loader's name checks are not what keeps the page safe.
        let wf: Workflow = serde_json::from_value(serde_json::json!({
            "document": {"dsl": "1.0.0", "namespace": "t", "name": "g", "version": "1"},
            "do": [
                {"pick": {"switch": [{"x\"/><b>": {"then": "continue"}}]}},
                {"<script>alert(1)</script>": {"set": {"a": 1}}}
            ]
        }))
        .unwrap();
        let svg = build(&wf, &HashMap::new(), TaskState::Pending).to_svg();
        assert!(!svg.contains("<script>") && !svg.contains("<b>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(svg.contains("x&quot;/&gt;&lt;b&gt;"), "{svg}");
    }
}
