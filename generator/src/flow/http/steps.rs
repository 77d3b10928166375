//! An http flow's steps, compiled into a flat program.
//!
//! `group`, `loop` and `if` nest steps in the scenario file; here they
//! become jumps in one list of [`Op`]s, so an iteration is a loop over a
//! program counter: no recursion, no boxed futures, and the iteration's
//! state machine stays the size of one request.
//!
//! ```yaml
//! steps:
//!   - group: login                        # tag group=::login, group_duration
//!     steps: [ { request: { … } } ]
//!   - loop: { over: orderIds, as: orderId }   # or loop: 3 ({{loop.index}})
//!     steps: [ … ]
//!   - if: "{{orderIds.length}} > 0"
//!     steps: [ … ]
//!   - sleep: 1s..3s
//!   - metric: { name: cart_items, type: trend, value: "{{orderIds.length}}" }
//! ```
//!
//! Variables are resolved to slots while compiling: a step sees what the
//! steps before it capture, and a loop's `as` and `loop.index` only inside
//! the loop.

use super::capture::Capture;
use super::check::Check;
use super::config::{self, RequestStep};
use crate::config::reader::Obj;
use crate::flow::condition::Condition;
use crate::flow::template::Template;
use crate::flow::think::Think;
use crate::metrics::builtin::MetricDef;
use crate::metrics::custom;

/// Fields a step may have.
const STEP_FIELDS: &[&str] = &["request", "checks", "capture", "sleep", "group", "loop", "if", "steps", "metric"];
const LOOP_FIELDS: &[&str] = &["over", "as", "count"];
const METRIC_FIELDS: &[&str] = &["name", "type", "value"];
/// Deepest nesting of `group`, `loop` and `if`.
const MAX_DEPTH: usize = 16;
/// Most passes of a counted loop.
const MAX_COUNT: u64 = 1_000_000;
/// Prefix that takes a variable out of scope (no placeholder can name it).
const HIDDEN: char = '\0';

/// One instruction of a compiled flow.
#[derive(Debug)]
pub enum Op {
    /// A request, its checks and captures, and its sleep.
    Request(Box<RequestStep>),
    /// A pause.
    Sleep(Think),
    /// Entering group `id`.
    Enter(usize),
    /// Leaving group `id` (records `group_duration`).
    Leave(usize),
    /// Loop `id` starts over.
    LoopInit(usize),
    /// Loop `id` runs another pass, or jumps to `exit`.
    LoopTest(Box<LoopTest>),
    /// End of a pass of loop `id`: back to its test at `test`.
    LoopNext {
        /// The loop.
        id: usize,
        /// Index of its [`Op::LoopTest`].
        test: usize,
    },
    /// Runs what follows when `cond` holds, else jumps to `skip`.
    If {
        /// The condition.
        cond: Box<Condition>,
        /// Index after the `if`'s steps.
        skip: usize,
    },
    /// One sample of a custom metric.
    Metric(Box<MetricStep>),
}

/// A loop's test: how many passes, and what each pass sees.
#[derive(Debug)]
pub struct LoopTest {
    /// The loop.
    pub id: usize,
    /// What it runs over.
    pub over: Over,
    /// The slot of `{{loop.index}}` (from 0).
    pub index: usize,
    /// Index after the loop's steps.
    pub exit: usize,
}

/// What a loop runs over.
#[derive(Debug)]
pub enum Over {
    /// `loop: N`.
    Count(u64),
    /// `loop: {over: NAME, as: ITEM}`: the items of variable `list`, each in
    /// slot `item`.
    List {
        /// The list's slot.
        list: usize,
        /// The item's slot.
        item: usize,
    },
}

/// A `metric:` step.
#[derive(Debug)]
pub struct MetricStep {
    /// The metric.
    pub def: MetricDef,
    /// Its value: a number (a truth for a rate).
    pub value: Template,
    /// Index among the flow's metric steps (a series per VU each).
    pub index: usize,
    /// The group the step is in.
    pub group: Option<String>,
}

/// A compiled flow.
#[derive(Debug, Default)]
pub struct Program {
    /// The instructions.
    pub ops: Vec<Op>,
    /// Variable names by slot (out-of-scope ones start with NUL).
    pub vars: Vec<String>,
    /// Number of requests.
    pub requests: usize,
    /// Group paths by id (`::a::b`).
    pub groups: Vec<String>,
    /// Number of loops.
    pub loops: usize,
    /// Number of metric steps.
    pub metrics: usize,
}

impl Program {
    /// The requests, in program order.
    pub fn requests(&self) -> impl Iterator<Item = &RequestStep> {
        self.ops.iter().filter_map(|op| match op {
            Op::Request(r) => Some(&**r),
            _ => None,
        })
    }

    /// Every template of the program: requests, metric values, conditions.
    pub fn templates(&self) -> impl Iterator<Item = &Template> {
        self.requests().flat_map(RequestStep::templates).chain(self.ops.iter().flat_map(|op| match op {
            Op::Metric(m) => vec![&m.value],
            Op::If { cond, .. } => cond.templates(),
            _ => Vec::new(),
        }))
    }

    /// The slot a template names `name` by, if it is in scope at the end.
    pub fn slot(&self, name: &str) -> Option<usize> {
        self.vars.iter().rposition(|v| v == name)
    }

    /// The names the requests capture, in first-capture order.
    pub fn captured(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for c in self.requests().flat_map(|r| &r.captures) {
            if !names.contains(&c.name) {
                names.push(c.name.clone());
            }
        }
        names
    }

    /// A program of one request (what the token manager sends).
    pub fn single(mut request: RequestStep) -> Program {
        request.index = 0;
        Program { ops: vec![Op::Request(Box::new(request))], requests: 1, ..Program::default() }
    }
}

/// Compiles the `steps` list of `obj`; `vars` are the variables known
/// before the first step (data columns, setup values). The file's `scope`
/// says where multipart files are and whether bodies are discarded.
pub fn compile(obj: &Obj, vars: Vec<String>, scope: &crate::flow::Scope) -> Option<Program> {
    let mut c = Compiler {
        program: Program { vars, ..Program::default() },
        group: String::new(),
        depth: 0,
        base: scope.base.clone(),
        discard: scope.http.discard_bodies,
    };
    c.steps(obj)?;
    Some(c.program)
}

struct Compiler {
    program: Program,
    /// The enclosing groups' path.
    group: String,
    depth: usize,
    /// Where relative multipart file paths start.
    base: Option<std::path::PathBuf>,
    /// `discardResponseBodies`.
    discard: bool,
}

impl Compiler {
    /// Compiles `obj.steps` (required, not empty).
    fn steps(&mut self, obj: &Obj) -> Option<()> {
        let Some(list) = obj.array("steps") else {
            if !obj.has("steps") {
                obj.error("steps", "is required: a list of steps (request, sleep, group, loop, if, metric)");
            }
            return None;
        };
        if list.is_empty() {
            obj.error("steps", "must list at least one step");
            return None;
        }
        let mut ok = true;
        for (i, item) in list.iter().enumerate() {
            let Some(step) = Obj::new(item, format!("{}[{i}]", obj.path_of("steps")), obj.report) else {
                ok = false;
                continue;
            };
            ok &= self.step(&step).is_some();
            step.finish_with(STEP_FIELDS);
        }
        ok.then_some(())
    }

    fn step(&mut self, step: &Obj) -> Option<()> {
        let kinds: Vec<&str> =
            ["request", "group", "loop", "if", "metric"].into_iter().filter(|k| step.has(k)).collect();
        if kinds.len() > 1 {
            step.error(kinds[1], format!("a step does one thing: {} or {}", kinds[0], kinds[1]));
            return None;
        }
        let nests = matches!(kinds.first(), Some(&("group" | "loop" | "if")));
        if step.has("steps") && !nests {
            step.error("steps", "belongs to a group, loop or if step");
        }
        if !matches!(kinds.first(), None | Some(&"request")) {
            for field in ["checks", "capture", "sleep"] {
                if step.has(field) {
                    step.error(field, format!("needs a request in the same step, not a {}", kinds[0]));
                }
            }
        }
        if nests && self.depth >= MAX_DEPTH {
            step.error(kinds[0], format!("nests deeper than {MAX_DEPTH} levels"));
            return None;
        }
        match kinds.first() {
            Some(&"request") => self.request(step),
            Some(&"group") => self.group(step),
            Some(&"loop") => self.repeat(step),
            Some(&"if") => self.condition(step),
            Some(&"metric") => self.metric(step),
            _ => self.sleep(step),
        }
    }

    fn sleep(&mut self, step: &Obj) -> Option<()> {
        if !step.has("sleep") {
            step.report.error(step.path.clone(), "a step needs one of request, sleep, group, loop, if, metric");
            return None;
        }
        self.program.ops.push(Op::Sleep(step.think("sleep")?));
        Some(())
    }

    fn request(&mut self, step: &Obj) -> Option<()> {
        let request = step.object("request")?;
        let sleep = step.think("sleep");
        let checks = step.object("checks").map(Check::parse_all).unwrap_or_default();
        let before = step.report.is_clean();
        // The request's own templates cannot use what it captures; the later
        // steps' can, even when this step has problems (no cascade of errors).
        let visible = self.visible();
        let r = config::parse_request_with(request, &visible, self.base.as_deref());
        let captures = match step.object("capture") {
            Some(c) => Capture::parse_all(c, &mut self.program.vars),
            None => Vec::new(),
        };
        let mut r = r?;
        if !before || !step.report.is_clean() {
            return None;
        }
        r.checks = checks;
        r.captures = captures;
        r.sleep = sleep;
        let keeps = r.response_type.map_or(!self.discard, |t| t != config::ResponseType::None);
        if !keeps && (r.checks.iter().any(Check::needs_body) || r.captures.iter().any(Capture::needs_body)) {
            let field = if r.checks.iter().any(Check::needs_body) { "checks" } else { "capture" };
            let why = if self.discard { "discardResponseBodies is true" } else { "responseType is none" };
            step.error(field, format!("reads the response body, which this request does not keep ({why}; set responseType: text on the request)"));
            return None;
        }
        r.discard_body = !keeps;
        r.index = self.program.requests;
        r.group = self.group_tag();
        self.program.requests += 1;
        self.program.ops.push(Op::Request(Box::new(r)));
        Some(())
    }

    fn group(&mut self, step: &Obj) -> Option<()> {
        let name = step.string("group")?;
        if name.is_empty() || name.contains("::") {
            step.error("group", "must be a name, not empty and without \"::\"");
            return None;
        }
        let outer = self.group.len();
        self.group.push_str("::");
        self.group.push_str(&name);
        let id = self.program.groups.len();
        self.program.groups.push(self.group.clone());
        self.program.ops.push(Op::Enter(id));
        let body = self.nested(step);
        self.program.ops.push(Op::Leave(id));
        self.group.truncate(outer);
        body
    }

    fn repeat(&mut self, step: &Obj) -> Option<()> {
        let id = self.program.loops;
        self.program.loops += 1;
        let over = self.over(step)?;
        let index = self.declare("loop.index");
        self.program.ops.push(Op::LoopInit(id));
        let test = self.program.ops.len();
        self.program.ops.push(Op::LoopTest(Box::new(LoopTest { id, over, index, exit: 0 })));
        let body = self.nested(step);
        self.program.ops.push(Op::LoopNext { id, test });
        let exit = self.program.ops.len();
        if let Op::LoopTest(t) = &mut self.program.ops[test] {
            t.exit = exit;
            if let Over::List { item, .. } = t.over {
                hide(&mut self.program.vars[item]);
            }
        }
        hide(&mut self.program.vars[index]);
        body
    }

    /// `loop: N`, `loop: {count: N}` or `loop: {over: NAME, as: ITEM}`.
    fn over(&mut self, step: &Obj) -> Option<Over> {
        let count = |obj: &Obj, field: &str| {
            let n = obj.uint(field, 0)?;
            if n > MAX_COUNT {
                obj.error(field, format!("must be at most {MAX_COUNT}"));
                return None;
            }
            Some(Over::Count(n))
        };
        if !matches!(step.get("loop"), Some(serde_json::Value::Object(_))) {
            return count(step, "loop");
        }
        let spec = step.object("loop")?;
        let over = match (spec.has("count"), spec.string("over")) {
            (true, None) => count(&spec, "count"),
            (false, Some(list)) => {
                let visible = self.visible();
                match visible.iter().rposition(|v| *v == list) {
                    None => {
                        spec.error("over", format!("{list:?} is not a variable captured before this step"));
                        None
                    }
                    Some(list) => match spec.string("as") {
                        Some(name) => match super::capture::check_name(&name) {
                            Ok(()) => Some(Over::List { list, item: self.declare(&name) }),
                            Err(e) => {
                                spec.error("as", e);
                                None
                            }
                        },
                        None => {
                            spec.error("as", "is required: the name each item is given ({{NAME}})");
                            None
                        }
                    },
                }
            }
            _ => {
                spec.report.error(spec.path.clone(), "needs either count or over (with as)");
                None
            }
        };
        spec.finish_with(LOOP_FIELDS);
        over
    }

    fn condition(&mut self, step: &Obj) -> Option<()> {
        let source = step.string("if")?;
        let visible = self.visible();
        let names: Vec<&str> = visible.iter().map(String::as_str).collect();
        let cond = Condition::parse(&source, &names).map_err(|e| step.error("if", e)).ok();
        let at = self.program.ops.len();
        let placeholder = Condition::parse("1", &[]).expect("a constant");
        self.program.ops.push(Op::If { cond: Box::new(placeholder), skip: 0 });
        let body = self.nested(step);
        let end = self.program.ops.len();
        if let Op::If { cond: slot, skip } = &mut self.program.ops[at] {
            *skip = end;
            **slot = cond?;
        }
        body
    }

    fn metric(&mut self, step: &Obj) -> Option<()> {
        let spec = step.object("metric")?;
        let name = spec.require("name").and(spec.string("name"));
        let kind = spec.require("type").and(spec.string("type")).and_then(|k| {
            custom::parse_kind(&k).or_else(|| {
                spec.error("type", format!("{k:?} is not a metric type (counter, gauge, rate, trend)"));
                None
            })
        });
        let def = match (name, kind) {
            (Some(n), Some(k)) => custom::define(&n, k).map_err(|e| spec.error("name", e)).ok(),
            _ => None,
        };
        let text = match spec.require("value") {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => Some(v.to_string()),
            Some(_) => {
                spec.error("value", "must be a number, a boolean or a template");
                None
            }
            None => None,
        };
        let visible = self.visible();
        let names: Vec<&str> = visible.iter().map(String::as_str).collect();
        let value = text.and_then(|t| Template::parse_with(&t, &names).map_err(|e| spec.error("value", e)).ok());
        spec.finish_with(METRIC_FIELDS);
        let (def, value) = (def?, value?);
        let index = self.program.metrics;
        self.program.metrics += 1;
        let group = self.group_tag();
        self.program.ops.push(Op::Metric(Box::new(MetricStep { def, value, index, group })));
        Some(())
    }

    /// Compiles a nested step's own `steps`.
    fn nested(&mut self, step: &Obj) -> Option<()> {
        self.depth += 1;
        let r = self.steps(step);
        self.depth -= 1;
        r
    }

    /// A new slot named `name`, shadowing any earlier one.
    fn declare(&mut self, name: &str) -> usize {
        self.program.vars.push(name.to_string());
        self.program.vars.len() - 1
    }

    /// The variables' names, by slot (hidden ones cannot be named).
    fn visible(&self) -> Vec<String> {
        self.program.vars.clone()
    }

    fn group_tag(&self) -> Option<String> {
        (!self.group.is_empty()).then(|| self.group.clone())
    }
}

/// Takes a variable out of scope, keeping its slot.
fn hide(name: &mut String) {
    name.insert(0, HIDDEN);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::reader::Report;
    use serde_json::json;

    fn compile_doc(doc: serde_json::Value) -> (Option<Program>, String) {
        let report = Report::default();
        let program = compile(&Obj::new(&doc, "flows.f", &report).unwrap(), Vec::new(), &Default::default());
        let errors = report.into_result(()).err().map(|e| e.to_string()).unwrap_or_default();
        (program, errors)
    }

    #[test]
    fn nesting_compiles_to_jumps() {
        let (p, errors) = compile_doc(json!({"steps": [
            {"group": "login", "steps": [{"request": {"url": "http://h/login"}, "capture": {"ids": {"json": "$.a[*]", "all": true}}}]},
            {"loop": {"over": "ids", "as": "id"}, "steps": [{"request": {"url": "http://h/o/{{id}}?i={{loop.index}}"}}]},
            {"if": "{{ids.length}} > 0", "steps": [{"sleep": "1ms"}]},
            {"loop": 2, "steps": [{"metric": {"name": "steps_test_items", "type": "trend", "value": "{{ids.length}}"}}]}
        ]}));
        assert_eq!(errors, "");
        let p = p.unwrap();
        let shape: Vec<String> = p
            .ops
            .iter()
            .map(|op| match op {
                Op::Request(r) => format!("req{}{}", r.index, r.group.as_deref().unwrap_or("")),
                Op::Sleep(_) => "sleep".into(),
                Op::Enter(g) => format!("enter{g}"),
                Op::Leave(g) => format!("leave{g}"),
                Op::LoopInit(l) => format!("init{l}"),
                Op::LoopTest(t) => format!("test{}->{}", t.id, t.exit),
                Op::LoopNext { id, test } => format!("next{id}->{test}"),
                Op::If { skip, .. } => format!("if->{skip}"),
                Op::Metric(m) => format!("metric{}", m.index),
            })
            .collect();
        assert_eq!(
            shape,
            [
                "enter0",
                "req0::login",
                "leave0",
                "init0",
                "test0->7",
                "req1",
                "next0->4",
                "if->9",
                "sleep",
                "init1",
                "test1->13",
                "metric0",
                "next1->10"
            ]
        );
        assert_eq!((p.requests, p.loops, p.metrics, p.groups.clone()), (2, 2, 1, vec!["::login".to_string()]));
        // The loop's variables are out of scope after it.
        assert!(p.vars.iter().filter(|v| v.starts_with(HIDDEN)).count() == 3, "{:?}", p.vars);
    }

    #[test]
    fn mistakes_are_named_with_their_path() {
        let (_, errors) = compile_doc(json!({"steps": [
            {"request": {"url": "http://h/"}, "group": "g"},
            {"group": "a::b", "steps": [{"sleep": "1s"}]},
            {"loop": {"over": "nothing", "as": "x"}, "steps": [{"sleep": "1s"}]},
            {"loop": 3, "steps": [{"sleep": "1s"}]},
            {"request": {"url": "http://h/{{loop.index}}"}},
            {"loop": {"count": 2, "over": "x"}, "steps": [{"sleep": "1s"}]},
            {"if": "{{nope}} > 1", "steps": [{"sleep": "1s"}]},
            {"metric": {"name": "http_reqs", "type": "counter", "value": 1}},
            {"metric": {"name": "steps_test_m", "type": "histogram", "value": 1}},
            {"sleep": "1s", "steps": []},
            {"group": "empty", "steps": []},
            {"loop": 2000000, "steps": [{"sleep": "1s"}]}
        ]}));
        for want in [
            "flows.f.steps[0].group: a step does one thing: request or group",
            "flows.f.steps[1].group: must be a name",
            "flows.f.steps[2].loop.over: \"nothing\" is not a variable captured before this step",
            "flows.f.steps[4].request.url: unknown placeholder {{loop.index}}",
            "flows.f.steps[5].loop: needs either count or over",
            "flows.f.steps[6].if: unknown placeholder {{nope}}",
            "flows.f.steps[7].metric.name: \"http_reqs\" is a built-in metric",
            "flows.f.steps[8].metric.type: \"histogram\" is not a metric type",
            "flows.f.steps[9].steps: belongs to a group, loop or if step",
            "flows.f.steps[10].steps: must list at least one step",
            "flows.f.steps[11].loop: must be at most 1000000",
        ] {
            assert!(errors.contains(want), "{want:?} not in:\n{errors}");
        }
        let mut deep = json!({"sleep": "1s"});
        for _ in 0..20 {
            deep = json!({"group": "g", "steps": [deep]});
        }
        let (_, errors) = compile_doc(json!({"steps": [deep]}));
        assert!(errors.contains("nests deeper than 16 levels"), "{errors}");
    }
}
