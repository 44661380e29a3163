from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("workflows", "0007_buffered_events"),
    ]

    operations = [
        migrations.CreateModel(
            name="ActionReceipt",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("idempotency_key", models.CharField(max_length=200, unique=True)),
                ("action", models.CharField(max_length=120)),
                ("result", models.JSONField(default=dict)),
                ("created_at", models.DateTimeField()),
            ],
            options={"ordering": ["pk"]},
        ),
    ]
