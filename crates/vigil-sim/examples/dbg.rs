fn main() {
    let text = std::env::args().nth(1).unwrap();
    let program = vigil_sim::program::parse(&text, 3).unwrap();
    let mut world = vigil_sim::world::World::new(3);
    vigil_sim::program::run(&mut world, &program);
    world.settle();
    if world.enforcing() {
        world.settle_onchain();
        world.settle();
    }
    eprintln!("height {}", world.chain.height());
    for (i, n) in world.nodes.iter().enumerate() {
        for m in n.manager.chain_monitor().monitors() {
            let d = format!("{m:?}");
            let f = d.find("funding_spend:").map(|i| &d[i..(i + 120).min(d.len())]).unwrap_or("");
            eprintln!(
                "node {i} {} closed={} bh={} settled={} holder={:?} {f}",
                m.channel_id(),
                m.is_closed(),
                m.should_broadcast_holder_commitment(),
                m.onchain_settled(),
                m.holder_commitment().map(|h| h.trust().txid())
            );
        }
        eprintln!("node {i} sweeps {:?}", n.manager.pending_sweeps());
    }
    let (unspent, _) = world.closing_trees();
    for (op, o) in unspent {
        eprintln!("unspent {op} {} {}", o.value, o.script_pubkey);
    }
    eprintln!("violations {:?}", vigil_sim::check::check(&world));
}
