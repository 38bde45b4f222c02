"""Data pipeline: readers, record formats, chat templates, packing, mixtures, unification.

Entry points: `config.data_config`, `pipeline.build_train_iterator`, `pipeline.build_eval_batches`,
`templates.get_template` / `templates.render_prompt`. Importing this package loads nothing heavy.
"""
