"""The estate's compliance gates: cdk-nag packs and checks over synthesized templates."""
