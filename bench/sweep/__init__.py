"""`featcodec sweep`: the study as one declarative file, run as a graph of cached steps.

    STUDY.toml ─► study.load_study (validated: every problem in one message)
               ─► graph.plan_steps: images → extract → codec → neck → eval → report, each step's id a hash of
                  its kind, settings and its inputs' ids (content-addressed: an edit reruns only what changed)
               ─► runner.run_sweep: local (in-process or --jobs N processes) or Ray executor; artefacts under
                  RUN_DIR/steps/<id>/, finished steps marked by step.json (written last, atomically);
                  every evaluated point appended to RUN_DIR/results.jsonl (fsync'd); report at the end; a
                  killed step resumes over its own directory (its checkpoint, its shards)
               ─► estimate (--plan --estimate): the plan priced per step kind from dataset sizes and a
                  calibration (`featcodec calibrate`), before any data is downloaded

Every step calls the same library function as the matching CLI command (extract_features, train_codec,
train_neck, evaluate_neck, report_from_files): there is no second implementation.
"""
