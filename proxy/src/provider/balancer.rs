//! Provider choice: the first group with a provider in rotation, power-of-two-choices within it;
//! when every provider is evicted, the one whose eviction ends soonest (the gateway never makes a
//! backend unavailable by itself). Pure over a view of the providers.

use std::time::Instant;

/// What the balancer needs to know of one provider.
#[derive(Clone, Copy, Debug)]
pub struct Candidate {
    /// Out of rotation until this instant, if evicted.
    pub evicted_until: Option<Instant>,
    /// P2C score, lower is better.
    pub score: f64,
    /// Already tried by this request.
    pub tried: bool,
}

/// Picks `(group, provider)` or `None` when every provider was tried.
pub fn choose(groups: &[Vec<Candidate>], rng: &mut fastrand::Rng) -> Option<(usize, usize)> {
    for (g, group) in groups.iter().enumerate() {
        if let Some(p) = p2c(group, rng) {
            return Some((g, p));
        }
    }
    // Everything untried is evicted: the soonest to return is the best bet.
    groups
        .iter()
        .enumerate()
        .flat_map(|(g, group)| group.iter().enumerate().map(move |(p, c)| (g, p, c)))
        .filter(|(_, _, c)| !c.tried)
        .min_by_key(|(_, _, c)| c.evicted_until)
        .map(|(g, p, _)| (g, p))
}

fn p2c(group: &[Candidate], rng: &mut fastrand::Rng) -> Option<usize> {
    let available = |c: &Candidate| !c.tried && c.evicted_until.is_none();
    let count = group.iter().filter(|c| available(c)).count();
    let nth = |n: usize| {
        group
            .iter()
            .enumerate()
            .filter(|(_, c)| available(c))
            .nth(n)
    };
    match count {
        0 => None,
        1 => nth(0).map(|(i, _)| i),
        _ => {
            let a = rng.usize(..count);
            let mut b = rng.usize(..count - 1);
            if b >= a {
                b += 1;
            }
            let (ia, ca) = nth(a)?;
            let (ib, cb) = nth(b)?;
            // The better of the two wins in proportion to how much better it is: a provider 10×
            // slower still gets 1 comparison in 11, so one unlucky sample (a cold connection, a GC
            // pause) cannot starve it, and two equal providers share the load even when requests
            // come one at a time.
            let a_wins = cb.score / (ca.score + cb.score);
            if rng.f64() < a_wins {
                Some(ia)
            } else {
                Some(ib)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn healthy(score: f64) -> Candidate {
        Candidate {
            evicted_until: None,
            score,
            tried: false,
        }
    }

    fn evicted(secs: u64) -> Candidate {
        Candidate {
            evicted_until: Some(Instant::now() + Duration::from_secs(secs)),
            score: 1.0,
            tried: false,
        }
    }

    #[test]
    fn equal_providers_share_the_load() {
        let mut rng = fastrand::Rng::with_seed(7);
        let groups = vec![vec![healthy(1.0), healthy(1.1)]];
        let mut counts = [0; 2];
        for _ in 0..1000 {
            counts[choose(&groups, &mut rng).unwrap().1] += 1;
        }
        assert!(counts[0] > 350 && counts[1] > 350, "{counts:?}");
    }

    #[test]
    fn a_much_better_score_wins_almost_every_comparison() {
        let mut rng = fastrand::Rng::with_seed(7);
        let groups = vec![vec![healthy(1.0), healthy(20.0)]];
        let better = (0..1000)
            .filter(|_| choose(&groups, &mut rng) == Some((0, 0)))
            .count();
        assert!(better > 900, "{better}");
    }

    #[test]
    fn the_next_group_serves_only_when_the_first_is_evicted_or_tried() {
        let mut rng = fastrand::Rng::with_seed(1);
        let groups = vec![vec![evicted(5), healthy(1.0)], vec![healthy(0.1)]];
        assert_eq!(choose(&groups, &mut rng), Some((0, 1)));
        let groups = vec![
            vec![
                evicted(5),
                Candidate {
                    tried: true,
                    ..healthy(1.0)
                },
            ],
            vec![healthy(1.0)],
        ];
        assert_eq!(choose(&groups, &mut rng), Some((1, 0)));
    }

    #[test]
    fn when_all_are_evicted_the_soonest_to_return_is_tried() {
        let mut rng = fastrand::Rng::with_seed(1);
        let groups = vec![vec![evicted(30), evicted(5)], vec![evicted(10)]];
        assert_eq!(choose(&groups, &mut rng), Some((0, 1)));
    }

    #[test]
    fn nothing_is_chosen_when_everything_was_tried() {
        let mut rng = fastrand::Rng::with_seed(1);
        let groups = vec![vec![Candidate {
            tried: true,
            ..healthy(1.0)
        }]];
        assert_eq!(choose(&groups, &mut rng), None);
    }

    #[test]
    fn p2c_over_many_prefers_lower_scores() {
        let mut rng = fastrand::Rng::with_seed(3);
        let groups = vec![
            (0..8)
                .map(|i| healthy(f64::from(1 << i)))
                .collect::<Vec<_>>(),
        ];
        let mut counts = [0; 8];
        for _ in 0..4000 {
            counts[choose(&groups, &mut rng).unwrap().1] += 1;
        }
        assert!(counts[0] > counts[7] * 5, "{counts:?}");
        assert_eq!(counts.iter().sum::<i32>(), 4000);
    }
}
