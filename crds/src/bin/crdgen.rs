//! Prints the CustomResourceDefinition YAML of our API types; the output is committed as
//! `crds/agentgateway.dev.yaml` and a test fails when it drifts.

fn main() -> Result<(), serde_yaml::Error> {
    print!("{}", agentgateway_crds::crd_yaml()?);
    Ok(())
}
