DROP TABLE summary_changes;
