//! The nodes an execution walks: the pipeline's personas in order, with the
//! gates between them (`ideate` after Iggy, `prepublish` before Quinn).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::project::Persona;
use crate::run::Gate;
use crate::wire::GraphSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Node {
    Persona(Persona),
    Gate(Gate),
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Persona(p) => write!(f, "persona.{p}"),
            Node::Gate(g) => write!(f, "gate.{g}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid graph: {0}")]
pub struct GraphError(pub String);

/// Checks `spec` and lays out its nodes. Skipped personas are simply absent
/// from the pipeline; what remains must still make sense (Alex edits
/// Riley's clips, Quinn publishes a render or a clip, gates sit next to
/// their persona).
pub fn nodes(spec: &GraphSpec) -> Result<Vec<Node>, GraphError> {
    let pipeline = &spec.pipeline;
    if pipeline.is_empty() {
        return Err(GraphError("the pipeline is empty".into()));
    }
    let position = |p: Persona| pipeline.iter().position(|x| *x == p);
    for (i, persona) in pipeline.iter().enumerate() {
        if *persona == Persona::Brendan {
            return Err(GraphError("brendan is the chat front, not a graph step".into()));
        }
        if pipeline[..i].contains(persona) {
            return Err(GraphError(format!("{persona} appears twice")));
        }
    }
    let canonical = [Persona::Iggy, Persona::Riley, Persona::Alex, Persona::Quinn];
    let order: Vec<usize> = pipeline
        .iter()
        .map(|p| canonical.iter().position(|c| c == p).unwrap_or(0))
        .collect();
    if order.windows(2).any(|w| w[0] > w[1]) {
        return Err(GraphError(
            "personas must keep the order iggy, riley, alex, quinn".into(),
        ));
    }
    if position(Persona::Alex).is_some() && position(Persona::Riley).is_none() {
        return Err(GraphError(
            "alex needs riley's clips; riley cannot be skipped when alex runs".into(),
        ));
    }
    if position(Persona::Quinn).is_some() && position(Persona::Riley).is_none() {
        return Err(GraphError(
            "quinn needs a clip or a render to publish; riley cannot be skipped".into(),
        ));
    }
    for gate in &spec.hitl_gates {
        match gate {
            Gate::Ideate if position(Persona::Iggy).is_none() => {
                return Err(GraphError("the ideate gate needs iggy in the pipeline".into()));
            }
            Gate::Prepublish if position(Persona::Quinn).is_none() => {
                return Err(GraphError("the prepublish gate needs quinn in the pipeline".into()));
            }
            Gate::Workflow => {
                return Err(GraphError("the workflow gate is held by the API, not the graph".into()));
            }
            _ => {}
        }
    }
    let mut nodes = Vec::new();
    for persona in pipeline {
        if *persona == Persona::Quinn && spec.hitl_gates.contains(&Gate::Prepublish) {
            nodes.push(Node::Gate(Gate::Prepublish));
        }
        nodes.push(Node::Persona(*persona));
        if *persona == Persona::Iggy && spec.hitl_gates.contains(&Gate::Ideate) {
            nodes.push(Node::Gate(Gate::Ideate));
        }
    }
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Persona::*;

    fn spec(pipeline: &[Persona], gates: &[Gate]) -> GraphSpec {
        GraphSpec {
            pipeline: pipeline.to_vec(),
            hitl_gates: gates.to_vec(),
        }
    }

    #[test]
    fn gates_sit_after_iggy_and_before_quinn() {
        let nodes = nodes(&spec(&[Iggy, Riley, Alex, Quinn], &[Gate::Ideate, Gate::Prepublish])).unwrap();
        assert_eq!(
            nodes,
            [
                Node::Persona(Iggy),
                Node::Gate(Gate::Ideate),
                Node::Persona(Riley),
                Node::Persona(Alex),
                Node::Gate(Gate::Prepublish),
                Node::Persona(Quinn)
            ]
        );
    }

    #[test]
    fn skipped_editing_leaves_the_rest() {
        let nodes = nodes(&spec(&[Iggy, Riley, Quinn], &[])).unwrap();
        assert_eq!(nodes, [Node::Persona(Iggy), Node::Persona(Riley), Node::Persona(Quinn)]);
    }

    #[test]
    fn impossible_graphs_are_refused_with_a_reason() {
        let cases: &[(&[Persona], &[Gate], &str)] = &[
            (&[], &[], "empty"),
            (&[Iggy, Alex, Quinn], &[], "alex needs riley"),
            (&[Quinn, Riley], &[], "order"),
            (&[Iggy, Iggy], &[], "twice"),
            (&[Riley, Alex, Quinn], &[Gate::Ideate], "ideate gate needs iggy"),
            (&[Iggy, Riley, Alex], &[Gate::Prepublish], "prepublish gate needs quinn"),
            (&[Iggy], &[Gate::Workflow], "held by the API"),
        ];
        for (pipeline, gates, reason) in cases {
            let err = nodes(&spec(pipeline, gates)).unwrap_err();
            assert!(err.0.contains(reason), "{pipeline:?} {gates:?}: {err}");
        }
    }
}
