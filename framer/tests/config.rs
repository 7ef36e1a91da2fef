//! `FramerLossConfig` through serde: a TOML table deserialises into it, and it round-trips.

use framer::{BandMaskKind, FramerLossConfig, LossExecution};

#[test]
fn a_toml_table_deserialises_into_the_config() {
    let config: FramerLossConfig = toml::from_str(
        r#"
        temperature = 0.5
        adaptive_weight = false
        alignment_modulation = true
        execution = "tensor"
        mask = { kind = "radial", radius = 0.3 }
        "#,
    )
    .unwrap();
    assert_eq!(
        config,
        FramerLossConfig::new()
            .with_temperature(0.5)
            .with_adaptive_weight(false)
            .with_execution(LossExecution::Tensor)
            .with_mask(BandMaskKind::Radial { radius: 0.3 })
    );
    let quantile: BandMaskKind = toml::from_str(r#"kind = "quantile"
cutoff = 0.25"#).unwrap();
    assert_eq!(quantile, BandMaskKind::Quantile { cutoff: 0.25 });
    assert!(toml::from_str::<BandMaskKind>(r#"kind = "quantile"
radius = 0.25"#).is_err(), "a field of the other kind is rejected");
}

#[test]
fn the_config_round_trips_and_keeps_its_defaults() {
    let config = FramerLossConfig::new();
    assert_eq!(config, FramerLossConfig::default());
    assert_eq!(config.mask, BandMaskKind::Quantile { cutoff: 0.2 });
    assert_eq!(config.temperature, 1.0);
    assert!(config.adaptive_weight && config.alignment_modulation);
    assert_eq!(config.execution, LossExecution::Auto);
    let text = toml::to_string(&config).unwrap();
    assert_eq!(toml::from_str::<FramerLossConfig>(&text).unwrap(), config, "{text}");
    // burn's JSON form (`Config::save` / `Config::load`)
    let json = config.to_string();
    assert!(json.contains("\"execution\": \"auto\"") || json.contains("\"execution\":\"auto\""), "{json}");
}
