//! Which chunks keyword search must read: tsqueries whose union holds every chunk that could
//! reach a score threshold, so the text index returns those and the long posting lists of
//! common terms are only intersected, never read chunk by chunk.
//!
//! Each term adds at most its weight to a chunk's score (BM25: idf × (k1 + 1)). A chunk can
//! reach the threshold only if the weights of the terms it holds sum to it. With the terms
//! sorted by weight, heaviest first, and `rest[j]` the sum of the weights from term j on, a
//! qualifying chunk's heaviest term j has `rest[j] ≥ threshold`, and it then needs terms after j
//! worth `threshold − weight[j]`: the same question one level down. Expanded to a fixed depth
//! (then relaxed to "any one feasible term", which only adds chunks) this is a small formula;
//! depth 0 is MaxScore's "any of the terms that are not negligible".

/// One query term: its lexeme, the most it adds to a score, and the share of chunks holding it
/// (for estimates only; BM25's idf gives it: e^−idf).
#[derive(Debug, Clone)]
pub struct Term<'a> {
    pub lexeme: &'a str,
    pub weight: f64,
    pub share: f64,
}

/// Lexeme mentions a formula may hold: a bigger one costs the index more per chunk than the
/// chunks it avoids.
const BUDGET: usize = 300;
/// Levels of exact expansion tried first.
const MAX_DEPTH: usize = 3;

enum Node {
    Term(usize),
    /// The term and one of the alternatives.
    And(usize, Vec<Node>),
}

struct Plan<'t, 'a> {
    terms: &'t [Term<'a>],
    rest: Vec<f64>,
}

impl<'t, 'a> Plan<'t, 'a> {
    /// `terms` sorted by weight, heaviest first.
    fn new(terms: &'t [Term<'a>]) -> Self {
        let mut rest = vec![0.0; terms.len() + 1];
        for j in (0..terms.len()).rev() {
            rest[j] = rest[j + 1] + terms[j].weight.max(0.0);
        }
        Plan { terms, rest }
    }

    /// The alternatives by which a chunk holds terms from `from` on worth `need` (> 0), to
    /// `depth` levels; None past the budget (counted down in `left`).
    fn alternatives(&self, from: usize, need: f64, depth: usize, left: &mut usize) -> Option<Vec<Node>> {
        let mut out = Vec::new();
        for j in (from..self.terms.len()).take_while(|&j| self.rest[j] >= need) {
            *left = left.checked_sub(1)?;
            let still = need - self.terms[j].weight;
            if still <= 0.0 || depth == 0 {
                out.push(Node::Term(j));
            } else {
                out.push(Node::And(j, self.alternatives(j + 1, still, depth - 1, left)?));
            }
        }
        Some(out)
    }

    /// The deepest expansion within the budget. A threshold of 0 or less asks for every chunk
    /// holding any term.
    fn formula(&self, threshold: f64) -> Vec<Node> {
        let need = threshold.max(f64::MIN_POSITIVE);
        (0..=MAX_DEPTH)
            .rev()
            .find_map(|depth| self.alternatives(0, need, depth, &mut BUDGET.clone()))
            .unwrap_or_else(|| self.alternatives(0, need, 0, &mut { usize::MAX }).expect("no budget"))
    }

    fn render(&self, node: &Node, out: &mut String) {
        let quote = |lexeme: &str| format!("'{}'", lexeme.replace('\\', "\\\\").replace('\'', "''"));
        match node {
            Node::Term(j) => out.push_str(&quote(self.terms[*j].lexeme)),
            Node::And(j, alternatives) => {
                out.push_str(&quote(self.terms[*j].lexeme));
                out.push_str(" & ( ");
                for (i, a) in alternatives.iter().enumerate() {
                    if i > 0 {
                        out.push_str(" | ");
                    }
                    self.render(a, out);
                }
                out.push_str(" )");
            }
        }
    }

    /// The share of chunks matching one of the alternatives, as if terms occurred independently.
    fn share(&self, alternatives: &[Node]) -> f64 {
        1.0 - alternatives
            .iter()
            .map(|n| match n {
                Node::Term(j) => 1.0 - self.terms[*j].share,
                Node::And(j, a) => 1.0 - self.terms[*j].share * self.share(a),
            })
            .product::<f64>()
    }
}

fn sorted<'a>(terms: &[Term<'a>]) -> Vec<Term<'a>> {
    let mut t = terms.to_vec();
    t.sort_by(|a, b| b.weight.total_cmp(&a.weight).then_with(|| a.lexeme.cmp(b.lexeme)));
    t
}

/// tsqueries (one per heaviest term, each led by that term, so the index reads only its
/// posting list in full) whose union holds every chunk whose terms' weights sum to at least
/// `threshold`.
pub fn queries(terms: &[Term], threshold: f64) -> Vec<String> {
    let terms = sorted(terms);
    let plan = Plan::new(&terms);
    plan.formula(threshold)
        .iter()
        .map(|n| {
            let mut s = String::new();
            plan.render(n, &mut s);
            s
        })
        .collect()
}

/// The lowest threshold whose queries are expected to match at most `count` chunks, over groups
/// of terms (one per text search configuration) with the number of chunks each group is
/// searched in; found by bisection, since a higher threshold never matches more.
pub fn threshold_for_count(groups: &[(Vec<Term>, f64)], count: f64) -> f64 {
    let sorted: Vec<(Vec<Term>, f64)> = groups.iter().map(|(t, n)| (sorted(t), *n)).collect();
    let plans: Vec<(Plan, f64)> = sorted.iter().map(|(t, n)| (Plan::new(t), *n)).collect();
    let expected = |th: f64| plans.iter().map(|(p, n)| n * p.share(&p.formula(th))).sum::<f64>();
    let (mut lo, mut hi) = (0.0, plans.iter().map(|(p, _)| p.rest[0]).fold(0.0, f64::max));
    for _ in 0..40 {
        let mid = (lo + hi) / 2.0;
        if expected(mid) > count {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The share of chunks `queries(terms, threshold)` is expected to match.
    fn expected_share(terms: &[Term], threshold: f64) -> f64 {
        let terms = sorted(terms);
        let plan = Plan::new(&terms);
        plan.share(&plan.formula(threshold))
    }

    fn terms<'a>(w: &[(&'a str, f64)]) -> Vec<Term<'a>> {
        w.iter().map(|&(lexeme, weight)| Term { lexeme, weight, share: 0.1 }).collect()
    }

    /// Evaluates a rendered query against a chunk's set of lexemes (the renderer's grammar only).
    fn matches(query: &str, chunk: &[&str]) -> bool {
        fn expr(t: &[&str], i: &mut usize, chunk: &[&str]) -> bool {
            let mut any = false;
            loop {
                any |= conj(t, i, chunk);
                if t.get(*i) != Some(&"|") {
                    return any;
                }
                *i += 1;
            }
        }
        fn conj(t: &[&str], i: &mut usize, chunk: &[&str]) -> bool {
            let mut all = true;
            loop {
                let v = if t[*i] == "(" {
                    *i += 1;
                    let v = expr(t, i, chunk);
                    *i += 1; // ")"
                    v
                } else {
                    let v = chunk.contains(&t[*i].trim_matches('\''));
                    *i += 1;
                    v
                };
                all &= v;
                if t.get(*i) != Some(&"&") {
                    return all;
                }
                *i += 1;
            }
        }
        let tokens: Vec<&str> = query.split(' ').collect();
        expr(&tokens, &mut 0, chunk)
    }

    #[test]
    fn every_chunk_that_can_reach_the_threshold_matches_and_pairs_are_intersected() {
        let t = terms(&[("rare", 9.0), ("mid", 5.0), ("common", 3.0), ("often", 2.5), ("everywhere", 0.5)]);
        // Every subset of the terms as a chunk: it must match when its weights reach the
        // threshold, and not otherwise while the threshold needs at most four terms (depth 3
        // expands that far; beyond it a chunk may match with less, never with too little missed).
        for threshold in [0.0, 0.4, 2.0, 5.5, 8.0, 9.0, 11.0, 14.5, 19.9, 20.0, 25.0] {
            let q = queries(&t, threshold);
            for mask in 0u32..32 {
                let chunk: Vec<&str> = (0..5).filter(|i| mask >> i & 1 == 1).map(|i| t[i].lexeme).collect();
                let sum: f64 = (0..5).filter(|i| mask >> i & 1 == 1).map(|i| t[i].weight).sum();
                let hit = q.iter().any(|q| matches(q, &chunk));
                if sum >= threshold && !chunk.is_empty() {
                    assert!(hit, "threshold {threshold}: {chunk:?} (sum {sum}) must match {q:?}");
                }
                if sum < threshold && threshold < 19.0 {
                    assert!(!hit, "threshold {threshold}: {chunk:?} (sum {sum}) is exactly excluded at depth 3, {q:?}");
                }
            }
        }
        assert_eq!(queries(&t, 10.0), ["'rare' & ( 'mid' | 'common' | 'often' )", "'mid' & ( 'common' & ( 'often' ) )"]);
        assert_eq!(queries(&t, 0.0), ["'rare'", "'mid'", "'common'", "'often'", "'everywhere'"]);
        assert!(queries(&t, 21.0).is_empty(), "beyond every weight together");
    }

    #[test]
    fn lexemes_are_quoted_and_big_queries_stay_within_the_budget() {
        let t = terms(&[("it's", 2.0), ("a\\b", 2.0)]);
        assert_eq!(queries(&t, 3.0), ["'a\\\\b' & ( 'it''s' )"]);
        // 20 equal terms, three needed: depths 3 and 2 would mention more than the budget;
        // depth 1 (pairs, a superset) is chosen.
        let names: Vec<String> = (0..20).map(|i| format!("t{i:02}")).collect();
        let many: Vec<Term> = names.iter().map(|n| Term { lexeme: n, weight: 1.0, share: 0.01 }).collect();
        let q = queries(&many, 3.0);
        let mentions: usize = q.iter().map(|q| q.matches('\'').count() / 2).sum();
        assert!(mentions <= BUDGET, "{mentions}");
        assert_eq!(q.len(), 18, "every term that can lead three");
        assert!(q[0].starts_with("'t00' & ( 't01' | 't02' | "), "{}", q[0]);
        assert_eq!(q[17], "'t17' & ( 't18' )", "t19 alone cannot add the two t17 lacks");
    }

    #[test]
    fn estimates_fall_as_the_threshold_rises_and_the_threshold_meets_a_count() {
        let t = vec![
            Term { lexeme: "a", weight: 8.0, share: 0.001 },
            Term { lexeme: "b", weight: 4.0, share: 0.02 },
            Term { lexeme: "c", weight: 3.0, share: 0.05 },
            Term { lexeme: "d", weight: 1.0, share: 0.4 },
        ];
        let all = 1.0 - 0.999 * 0.98 * 0.95 * 0.6;
        assert!((expected_share(&t, 0.0) - all).abs() < 1e-12);
        // 7: a alone; or b with c.
        let want = 1.0 - 0.999 * (1.0 - 0.02 * 0.05);
        assert!((expected_share(&t, 7.0) - want).abs() < 1e-12);
        let mut last = 1.0;
        for th in 0..=17 {
            let s = expected_share(&t, th as f64);
            assert!(s <= last + 1e-15, "{th}: {s} > {last}");
            last = s;
        }
        // 2 of 1000 chunks: a alone, or b with c, from just above 5 (where b with d also counts).
        let th = threshold_for_count(&[(t.clone(), 1000.0)], 2.0);
        assert!(th > 5.0 && th < 5.0 + 1e-9, "{th}");
        // Two groups: the second's 1000 chunks hold one term of weight 6, in half of them.
        let other = vec![Term { lexeme: "x", weight: 6.0, share: 0.5 }];
        let th = threshold_for_count(&[(t, 1000.0), (other, 1000.0)], 10.0);
        assert!(th > 6.0 && th < 6.0 + 1e-9, "{th}");
    }
}
